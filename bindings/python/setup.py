"""Build step of the nativemi package: everything else is in pyproject.toml.

The package is pure Python (ctypes), but it carries the engine: `build_py` copies the native folder that
`scripts/build-native.sh` publishes (libnativemi.so with models/ and data/ beside it, which the library needs at run
time) into the built package as nativemi/_native/, so an installed package works without the repository.

Where the folder is taken from:
  $NATIVEMI_NATIVE_DIR  when set (a folder holding libnativemi.so);
  ../../build/native    otherwise, relative to this file (the repository's build/native).
With NATIVEMI_SKIP_NATIVE=1 nothing is copied; the installed package then needs $NATIVEMI_LIBRARY at run time.

Because the wheel then holds a Linux shared library, it is tagged for the build platform (py3-none-<platform>)
rather than as a pure-Python wheel.
"""
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
LIBRARY_NAME = "libnativemi.so"
# Debug symbols and API docs the engine's publish step may leave beside the library; not needed to run.
IGNORED = shutil.ignore_patterns("*.dbg", "*.pdb", "*.xml", "*.debug")


def _skip_native() -> bool:
    return os.environ.get("NATIVEMI_SKIP_NATIVE", "") not in ("", "0")


def _native_source() -> Path:
    configured = os.environ.get("NATIVEMI_NATIVE_DIR")
    return Path(configured).resolve() if configured else HERE.parent.parent / "build" / "native"


class BuildPyWithNative(build_py):
    """build_py that also copies the native folder into <build_lib>/nativemi/_native/."""

    def run(self) -> None:
        super().run()
        if _skip_native():
            print("nativemi: NATIVEMI_SKIP_NATIVE is set: no native library bundled (set NATIVEMI_LIBRARY at run time)")
            return
        source = _native_source()
        library = source / LIBRARY_NAME
        if not library.is_file():
            raise SystemExit(
                f"nativemi: no {LIBRARY_NAME} in {source}.\n"
                "Build the engine's native folder first, from the repository root:\n"
                "    bash scripts/build-native.sh\n"
                "or point NATIVEMI_NATIVE_DIR at a folder holding libnativemi.so (with its models/ and data/),\n"
                "or set NATIVEMI_SKIP_NATIVE=1 to install without it (then set NATIVEMI_LIBRARY at run time)."
            )
        target = Path(self.build_lib) / "nativemi" / "_native"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=IGNORED)
        print(f"nativemi: bundled the native folder {source} as {target}")


commands = {"build_py": BuildPyWithNative}

if not _skip_native():
    try:  # setuptools 70.1 and later carry bdist_wheel; before that it is the wheel package's.
        from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
    except ImportError:
        try:
            from wheel.bdist_wheel import bdist_wheel as _bdist_wheel
        except ImportError:
            _bdist_wheel = None

    if _bdist_wheel is not None:

        class PlatformWheel(_bdist_wheel):
            """A wheel for any Python 3 on this platform: it holds a shared library but no extension module."""

            def finalize_options(self) -> None:
                super().finalize_options()
                self.root_is_pure = False

            def get_tag(self):
                _, _, platform = super().get_tag()
                return "py3", "none", platform

        commands["bdist_wheel"] = PlatformWheel

setup(cmdclass=commands)
