"""Packaging for recbole-gemirec.

The repository keeps ``properties/`` (model and dataset defaults) and ``dataset_configs/`` (protocol
and dataset files) at its top level, as RecBole extensions do; the wheel maps both into the package as
``recbole_gemirec/properties`` and ``recbole_gemirec/dataset_configs`` so an installed package finds
every YAML it reads (see ``recbole_gemirec/resources.py``).
"""

from setuptools import find_packages, setup

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
        "recbole_gemirec.properties": ["model/*.yaml", "dataset/*.yaml", "hyper/*.hyper"],
        "recbole_gemirec.dataset_configs": ["*.yaml"],
    },
    py_modules=[],
    scripts=["run_recbole_gemirec.py", "run_hyper.py"],
    install_requires=[
        "recbole==1.2.1",
        "torch>=2.1",          # 2.13.0 is the tested version (constraints.txt)
        "numpy>=1.23",         # numpy 2 works through recbole_gemirec._compat
        "pandas>=1.3,<3",      # pandas 3 silently breaks RecBole 1.2.1's feature loading
        "scipy",
        "pyyaml",
        "faiss-cpu>=1.7",
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
