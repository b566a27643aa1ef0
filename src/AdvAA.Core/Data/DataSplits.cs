namespace AdvAA.Core.Data;

/// <summary>A training and a test set read from one place.</summary>
/// <param name="Train">The training images.</param>
/// <param name="Test">The test images, with the same classes and image size.</param>
/// <param name="Format">"cifar10-binary", "cifar100-binary", "image-folder" or "embedded-sample".</param>
public sealed record DataSplits(ImageDataset Train, ImageDataset Test, string Format);
