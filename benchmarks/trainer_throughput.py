"""Training throughput of trainers.cifar against a plain reference loop, side by side.

Reference: what people write by hand: a torchvision DataLoader (2 workers) over PIL images with
RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize, feeding the same model
(ResNet-18, CIFAR stem, same width), batch size, optimizer and device.
Ours: ``trainers.cifar.train`` on the same images; its per-epoch ``images_per_second`` covers
the training pass only (evaluation excluded), as the reference's timing does.

Both run ``--epochs`` epochs; the first is a warm-up and is not counted.

    python benchmarks/trainer_throughput.py [--width 0.25] [--batch-size 128] [--images 5000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from trainers.cifar import CifarConfig, train
from trainers.data import synthetic_cifar
from trainers.reporter import RecordingReporter
from trainers.resnet import resnet18_cifar


class _PilDataset(Dataset[tuple[torch.Tensor, int]]):
    """Like torchvision's CIFAR10: uint8 HWC arrays in memory, a PIL image per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: object) -> None:
        self.arrays = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.arrays[i])
        return self.transform(img), self.labels[i]  # type: ignore[operator]


def reference_images_per_second(images: torch.Tensor, labels: torch.Tensor, *, width: float,
                                batch_size: int, epochs: int, device: torch.device) -> float:
    x = images.float() / 255
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).tolist()
    tf = transforms.Compose([transforms.RandomCrop(32, padding=4),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(mean, std)])
    loader = DataLoader(_PilDataset(images, labels, tf), batch_size=batch_size, shuffle=True,
                        num_workers=2, drop_last=False, pin_memory=device.type == "cuda",
                        persistent_workers=True)
    torch.manual_seed(0)
    model = resnet18_cifar(width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    rates = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        seen = 0
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(yb)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - start))
    return statistics.mean(rates[1:]) if len(rates) > 1 else rates[0]


def ours_images_per_second(n_images: int, *, width: float, batch_size: int, epochs: int,
                           device: str, amp: str) -> float:
    cfg = CifarConfig(dataset="synthetic", synthetic_size=n_images, val_size=500, width=width,
                      batch_size=batch_size, epochs=epochs, schedule="constant", lr=0.05,
                      optimizer="sgd", momentum=0.9, weight_decay=5e-4, patience=epochs,
                      device=device, amp=amp)
    reporter = RecordingReporter()
    train(cfg, reporter)
    rates = [m["images_per_second"] for _, m in reporter.history]
    return statistics.mean(rates[1:]) if len(rates) > 1 else rates[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    # The same images for both: the synthetic set our trainer draws (train part).
    data = synthetic_cifar(args.images + 500, seed=0)
    print(f"device {device}, torch threads {torch.get_num_threads()}, width {args.width}, "
          f"batch {args.batch_size}, {args.images} images, {args.epochs} epochs (first is "
          "warm-up)")
    ref = reference_images_per_second(data.images[: args.images], data.labels[: args.images],
                                      width=args.width, batch_size=args.batch_size,
                                      epochs=args.epochs, device=device)
    print(f"reference DataLoader+PIL loop (fp32):   {ref:9.1f} images/s")
    for amp in ("auto", "bf16"):
        ours = ours_images_per_second(args.images, width=args.width,
                                      batch_size=args.batch_size, epochs=args.epochs,
                                      device=args.device, amp=amp)
        label = f"trainers.cifar (amp={amp}):"
        print(f"{label:40s}{ours:9.1f} images/s   ratio {ours / ref:5.2f}x")


if __name__ == "__main__":
    main()
