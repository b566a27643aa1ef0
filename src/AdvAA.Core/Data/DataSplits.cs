namespace AdvAA.Core.Data;

/// <summary>A training and a test set (and a validation set where the data has one) read from one place.</summary>
/// <param name="Train">The training images.</param>
/// <param name="Test">The test images, with the same classes and image size.</param>
/// <param name="Format">"cifar10-binary", "cifar100-binary", "image-folder", "tar-shards", "metadata-csv" or "embedded-sample".</param>
/// <param name="Validation">An image folder's <c>val/</c> split or metadata.csv's val rows, or null.</param>
public sealed record DataSplits(ImageDataset Train, ImageDataset Test, string Format, ImageDataset? Validation = null) : System.IDisposable
{
    /// <summary>What loaded but is probably a mistake (an image listed twice, in both train and test), each naming the file; printed as warnings.</summary>
    public System.Collections.Generic.IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Frees the splits' tensors (whoever loaded the data owns them).</summary>
    public void Dispose()
    {
        Train.Dispose();
        Test.Dispose();
        Validation?.Dispose();
    }
}
