"""Build the packed binary kernels (backbones/csrc/bitops.c); all metadata lives in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and b2track falls back to
its pure-PyTorch packed kernels (one warning line at run time). OpenMP is used when the compiler has it.
"""
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP = ["-fopenmp"]


class BuildExt(build_ext):
    """Compile with OpenMP when available, otherwise single-threaded; never fail the install."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:  # any compiler failure: retry without OpenMP
            if not set(OPENMP) & set(ext.extra_compile_args):
                raise
            print(f"b2track: building {ext.name} without OpenMP ({err})")
            ext.extra_compile_args = [a for a in ext.extra_compile_args if a not in OPENMP]
            ext.extra_link_args = [a for a in ext.extra_link_args if a not in OPENMP]
            super().build_extension(ext)


setup(
    ext_modules=[Extension("backbones._bitops", ["backbones/csrc/bitops.c"], optional=True, libraries=["m"],
                           extra_compile_args=["-O3", "-std=c11", *OPENMP], extra_link_args=OPENMP)],
    cmdclass={"build_ext": BuildExt},
)
