"""Packaging for recbole-gemirec.

The repository keeps ``properties/`` (model and dataset defaults) and ``dataset_configs/`` (protocol
and dataset files) at its top level, as RecBole extensions do; the wheel maps both into the package as
``recbole_gemirec/properties`` and ``recbole_gemirec/dataset_configs`` so an installed package finds
every YAML it reads (see ``recbole_gemirec/resources.py``).

The wheel also carries ``recbole_gemirec_startup.pth`` at its root, so that it lands in site-packages
next to the packages, as setuptools ships its own ``distutils-precedence.pth``: its one line activates
the start-up hook of ``recbole_gemirec_startup.py``, which makes RecBole's own tools run on numpy 2 and
torch >= 2.6 without the user importing the extension (docs/design.md §7). An editable install does not
get it.
"""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PTH_NAME = "recbole_gemirec_startup.pth"
PTH_LINE = "import recbole_gemirec_startup; recbole_gemirec_startup.activate()\n"


class build_py_with_startup_pth(build_py):
    """build_py that also writes the start-up ``.pth`` file into the build root (the wheel's root)."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, PTH_NAME)
        self.mkpath(self.build_lib)
        with open(target, "w", encoding="utf-8") as f:
            f.write(PTH_LINE)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH_NAME)]


packages = find_packages(include=["recbole_gemirec", "recbole_gemirec.*"])
packages += ["recbole_gemirec.properties", "recbole_gemirec.dataset_configs"]

setup(
    name="recbole-gemirec",
    version="0.1.0",
    description="GemiRec multi-interest retrieval and its baselines as a RecBole 1.2 extension",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir={
        "recbole_gemirec.properties": "properties",
        "recbole_gemirec.dataset_configs": "dataset_configs",
    },
    package_data={
        "recbole_gemirec.properties": ["model/*.yaml", "dataset/*.yaml", "hyper/*.hyper", "presets/*.yaml"],
        "recbole_gemirec.dataset_configs": ["*.yaml"],
    },
    py_modules=["recbole_gemirec_startup"],
    cmdclass={"build_py": build_py_with_startup_pth},
    scripts=["run_recbole_gemirec.py", "run_hyper.py"],
    install_requires=[
        "recbole==1.2.1",
        "torch>=2.1",          # 2.13.0 is the tested version (constraints.txt)
        "numpy>=1.23",         # numpy 2 works through recbole_gemirec._compat
        "pandas>=1.3,<3",      # pandas 3 silently breaks RecBole 1.2.1's feature loading
        "scipy",
        "pyyaml",
        "faiss-cpu>=1.7",
        # serving from a history: the query side runs on ONNX Runtime (exported in memory with torch.onnx,
        # which needs onnx); about 2x faster per request than TorchScript (docs/serving.md)
        "onnx>=1.14",
        "onnxruntime>=1.16",
        "tqdm",
        # RecBole's own recbole.quick_start imports ray, and ray 2.x imports pkg_resources, which
        # setuptools removed in 82; torch 2.13 requires setuptools >= 77, so without this bound a
        # fresh environment gets a setuptools that breaks RecBole's own tools (docs/reliability.md).
        "setuptools<82",
    ],
    extras_require={
        "hyper": ["hyperopt>=0.2.7"],      # run_hyper.py (RecBole's HyperTuning)
        "viz": ["matplotlib>=3.5", "scikit-learn>=1.0"],  # visualize (t-SNE), benchmark charts
        "test": ["pytest", "hyperopt>=0.2.7", "matplotlib>=3.5"],
    },
)
