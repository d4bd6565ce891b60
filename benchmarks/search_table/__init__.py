"""A recorded table of real CIFAR-10 learning curves over a grid that mirrors the round-2 space.

``record`` trains the grid (resumable, shardable), ``pack`` merges the shard files into one
compressed table, ``table`` loads it for replay (no torch needed). See README.md beside this file.
"""
