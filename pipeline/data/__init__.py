"""Data: decoding videos, dataset layouts, label splits, frame stores, clips and augmentation."""
