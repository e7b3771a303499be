"""Only what pyproject.toml cannot say: the scorer's compiled kernel (runtime/_kernel.c).

Optional: without a C compiler or Python's headers the build goes on without it, and the
scorer takes its pure-Python path (imdb_sentiment.runtime.kernel.KERNEL says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "imdb_sentiment.runtime._kernel",
            ["src/imdb_sentiment/runtime/_kernel.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
