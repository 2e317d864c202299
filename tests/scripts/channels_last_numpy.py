"""Images read with OpenCV/PIL into NumPy arrays ([N, H, W, 3]) go straight into an ImageNet ResNet.

The usual forum report: `expected input[4, 96, 96, 3] to have 3 channels, but got 96 channels instead`.
"""

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet18

model = resnet18(weights=None)
model.fc = nn.Linear(model.fc.in_features, 5)
frames = np.random.randint(0, 255, (4, 96, 96, 3), dtype=np.uint8)  # what cv2.imread gives, stacked
batch = torch.from_numpy(frames).float() / 255
logits = model(batch)
