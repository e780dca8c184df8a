"""The meta-transfer study: adaptation of meta-trained backbones on few-shot episodes, the tidy
table of transferability scores and post-adaptation accuracies, and its correlations."""
