"""A folder per class:

    <root>/train/<class name>/<video><video_suffix>
    <root>/test/<class name>/<video><video_suffix>

Classes are the folder names under train/, sorted; label n is the n-th name. A test folder
whose class has no train folder is refused. The video id is `<subset>/<class>/<file stem>`,
so the same file name may appear in several folders. Files with another suffix are ignored;
hidden files and folders (names starting with '.') too.
"""

from pathlib import Path

from pipeline.data.adapters.dataset import Dataset, Row, build_dataset, check_path, located


def _class_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise located(folder, None, "folder not found (expected one sub-folder per class)")
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_folders(root: Path, video_suffix: str) -> Dataset:
    """Read a class-per-folder dataset under `root`."""
    train_dirs = _class_dirs(root / "train")
    if not train_dirs:
        raise located(root / "train", None, "no class folders")
    classes = [d.name for d in train_dirs]
    rows = []
    for subset in ("train", "test"):
        for class_dir in _class_dirs(root / subset):
            if class_dir.name not in classes:
                raise located(
                    class_dir,
                    None,
                    f"class {class_dir.name!r} has no folder under {root / 'train'}",
                )
            videos = sorted(
                p
                for p in class_dir.iterdir()
                if p.suffix == video_suffix and not p.name.startswith(".")
            )
            for video in videos:
                relative = f"{subset}/{class_dir.name}/{video.name}"
                path = check_path(root, relative, str(video), None)
                rows.append(
                    Row(
                        video_id=f"{subset}/{class_dir.name}/{video.stem}",
                        path=path,
                        label=classes.index(class_dir.name),
                        subset=subset,
                        source=str(video),
                        row=None,
                    )
                )
    return build_dataset(root, rows, classes)
