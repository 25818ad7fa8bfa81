// Bilinear resizing of grey images (to give two data sets one size, e.g. MNIST and the 8×8
// digits for a CycleGAN).

/// Bilinear interpolation with half-pixel centres, PyTorch's `interpolate(mode: "bilinear",
/// align_corners: false)` without antialiasing: output pixel (i, j) samples the input at
/// ((i + ½)·h/H − ½, (j + ½)·w/W − ½), clamped to the image. The same size returns the
/// pixels unchanged; a constant image stays constant; values stay within the input's range.
public func resizeBilinear(
  _ pixels: [Float], count: Int, height h: Int, width w: Int, toHeight H: Int, toWidth W: Int
) -> [Float] {
  precondition(h > 0 && w > 0 && H > 0 && W > 0 && pixels.count == count * h * w)
  if h == H && w == W { return pixels }
  // Per output row/column: the two source indices and the weight of the second.
  func taps(_ n: Int, _ m: Int) -> [(Int, Int, Float)] {
    let scale = Double(n) / Double(m)
    return (0..<m).map { i in
      let s = max((Double(i) + 0.5) * scale - 0.5, 0)
      let lo = min(Int(s), n - 1)
      let hi = min(lo + 1, n - 1)
      return (lo, hi, Float(s - Double(lo)))
    }
  }
  let ys = taps(h, H)
  let xs = taps(w, W)
  var out = [Float](repeating: 0, count: count * H * W)
  for k in 0..<count {
    let src = k * h * w
    let dst = k * H * W
    for (i, (y0, y1, fy)) in ys.enumerated() {
      for (j, (x0, x1, fx)) in xs.enumerated() {
        let top = pixels[src + y0 * w + x0] * (1 - fx) + pixels[src + y0 * w + x1] * fx
        let bottom = pixels[src + y1 * w + x0] * (1 - fx) + pixels[src + y1 * w + x1] * fx
        out[dst + i * W + j] = top * (1 - fy) + bottom * fy
      }
    }
  }
  return out
}

extension ImageSet {
  /// The images resized bilinearly to `height × width` (labels kept).
  public func resized(height H: Int, width W: Int) -> ImageSet {
    ImageSet(
      height: H, width: W,
      pixels: resizeBilinear(pixels, count: count, height: height, width: width, toHeight: H, toWidth: W),
      labels: labels)
  }
}
