"""Spectrogram forecasting: traffic simulator, ConvLSTM with masked spectrogram pretraining, forecaster."""
