"""The default dataset: a synthetic fine-grained action benchmark written as H.264 MP4 files
with Diving48 V2 annotations (docs/dataset.md).

design: the classes and their phases; motion: a class and its factors -> per-frame poses;
factors: the per-clip random factors; scene: backgrounds; render: poses -> frames;
writer: the whole dataset on disk; preview: a PNG strip of frames per class.
"""
