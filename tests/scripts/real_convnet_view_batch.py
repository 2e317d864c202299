"""A ConvNet whose flatten hard-codes 16*64*64 with `view(-1, ...)`, for 256x256 images pooled to 32x32.

From http://www.wenzhangge.com/post/28999.html
(`Expected input batch_size (4) to match target batch_size (16)`): the view folds four images into one
row, so the loss sees a quarter of the batch.
"""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

num_classes = 3


class ConvNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(16, 16, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(16 * 64 * 64, num_classes)

    def forward(self, X):
        X = self.pool(self.relu(self.conv1(X)))
        X = self.pool(self.relu(self.conv2(X)))
        X = self.pool(self.relu(self.conv3(X)))
        X = X.view(-1, 16 * 64 * 64)
        X = self.fc(X)
        return X


train_data = TensorDataset(torch.rand(8, 3, 256, 256), torch.randint(0, num_classes, (8, 1)))
train_loader = DataLoader(train_data, batch_size=8)
model = ConvNet(num_classes)
criterion = nn.CrossEntropyLoss()
for images, labels in train_loader:
    outputs = model(images)
    loss = criterion(outputs, labels.squeeze())
    loss.backward()
