using System;

namespace AdvAA.Core.Augment;

/// <summary>
/// Bad augmentation input: an unknown op, a level or raw value out of range, images of the wrong
/// type or shape, a malformed policy. The message names the value and what was expected.
/// </summary>
public sealed class AugmentException(string message, Exception? inner = null) : Exception(message, inner);
