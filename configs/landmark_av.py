"""Stage 1 for lip sync: the audio-visual sample dataset, Whisper speech features, mouth-motion
terms.

  # ../shared/data; stores `speech`
  python -m data_pipelines.build talking_face_folder --config av
  emotalk train landmark --config configs/landmark_av.py --workdir ~/runs/landmark_av
  emotalk evaluate landmark --config configs/landmark_av.py --workdir ~/runs/landmark_av

The best checkpoint is the one whose predicted mouth opening follows the true one best on the whole
test clips with audio (`lip_error` = (1 - r) + |log std ratio|, see train.landmark.lip_sync), not
the one with the lowest landmark distance, which favours a mouth that hardly moves.
"""

from configs import landmark_sample


def get_config():
  config = landmark_sample.get_config()
  config.dataset_config = "av"
  config.model.speech_input = "whisper"
  # Emotion geometry at the strength the training speakers show it (see LandmarkNet.emotion_basis),
  # and only that: with two speakers who show emotions (MEAD M030, CREMA-D 1001), a network that
  # also sees the emotion learns their idiosyncrasies, which moved a held-out speaker's predicted
  # geometry away from her real one (docs/results.md#emotion).
  config.model.emotion_basis = True
  config.model.emotion_dim = 0
  config.model.emotion_head = False
  config.window = 16            # 0.64 s: long enough for a syllable's open-close.
  config.batch_size = 16
  config.eval_batch_size = 16
  config.balance_speakers = True
  config.opening_weight = 1.0
  config.opening_velocity_weight = 1.0
  config.opening_std_weight = 1.0
  config.num_train_steps = 2000
  config.warmup_steps = 100
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  config.lip_eval_clips = 40
  config.best_metric = "lip_error"
  config.best_mode = "min"
  return config
