"""Width-0.25 ResNet-18 on the real CIFAR-10 JPEG training split, on this machine's device.

45,000 training / 5,000 validation images (the stratified split the trainer always uses),
SGD+Nesterov lr 0.05 wd 5e-4 batch 128, cosine schedule over ``--epochs``. Prints validation
accuracy per epoch and wall time; side by side, the first epoch's training throughput of the
reference DataLoader+PIL loop on the same images, as a ratio.

    python benchmarks/real_data.py --data ../shared/data/cifar10-jpeg/train.tar.gz --epochs 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from benchmarks.trainer_throughput import reference_images_per_second
from trainers.cifar import CifarConfig, train
from trainers.data import load_image_folder
from trainers.reporter import RecordingReporter


class _Printer(RecordingReporter):
    def __init__(self, start: float) -> None:
        super().__init__()
        self.start = start

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        super().report(epoch, metrics)
        wall = time.perf_counter() - self.start
        print(f"epoch {epoch:3d}  val_acc {metrics['val_acc']:.4f}  train_acc "
              f"{metrics['train_acc']:.4f}  lr {metrics['lr']:.4f}  "
              f"{metrics['images_per_second']:7.1f} img/s  wall {wall:7.1f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg/train.tar.gz")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--cache-dir", default="~/.cache/hpsearch/data")
    args = parser.parse_args()
    start = time.perf_counter()
    data = load_image_folder(args.data, cache_dir=Path(args.cache_dir).expanduser())
    print(f"loaded {len(data)} images in {time.perf_counter() - start:.1f}s "
          f"(device {'cuda' if torch.cuda.is_available() else 'cpu'}, "
          f"{torch.get_num_threads()} threads)")
    cfg = CifarConfig(dataset=args.data, cache_dir=args.cache_dir, val_size=5000,
                      width=args.width, optimizer="nesterov", lr=0.05, weight_decay=5e-4,
                      batch_size=128, epochs=args.epochs, schedule="cosine",
                      patience=args.epochs, amp=args.amp)
    start = time.perf_counter()
    reporter = _Printer(start)
    result = train(cfg, reporter)
    wall = time.perf_counter() - start
    print(f"best val_acc {result['best_val_acc']:.4f} at epoch {result['best_epoch']}, "
          f"{result['epochs_run']} epochs in {wall:.1f}s")
    ours = reporter.history[0][1]["images_per_second"]
    ref = reference_images_per_second(data.images[:45000], data.labels[:45000],
                                      width=args.width, batch_size=128, epochs=1,
                                      device=torch.device("cuda" if torch.cuda.is_available()
                                                          else "cpu"))
    print(f"first-epoch throughput: ours {ours:.1f} img/s, reference loop {ref:.1f} img/s, "
          f"ratio {ours / ref:.2f}x")


if __name__ == "__main__":
    main()
