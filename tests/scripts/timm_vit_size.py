"""A timm ViT at 256x256, but the model was created for 224."""

import timm
import torch

model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=4)
images = torch.rand(1, 3, 256, 256)
logits = model(images)
