"""Training on TFDS datasets: the shared sharded loop, one trainer per stage
(`train_and_evaluate(config, workdir)`), each stage's dataset evaluation against its baselines, and
the short entry point `main`.

The only part of the package that imports TensorFlow (through `data_pipelines.input_pipeline`)."""
