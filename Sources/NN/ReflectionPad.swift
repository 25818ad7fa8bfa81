import Engine

/// Reflection padding of [B, C, H, W] by `padding.0` rows above and below and `padding.1`
/// columns left and right, mirroring about the edge pixel (PyTorch's `ReflectionPad2d`:
/// rows `2 1 | 0 1 2 … | H−2 H−3`); each pad must be smaller than its side. Convolutions
/// after it see image content instead of zeros at the border (CycleGAN's generators).
public func reflectionPad2D(_ x: Var, padding: (Int, Int)) -> Var {
  let s = x.shape
  precondition(s.count == 4, "reflectionPad2D wants [B, C, H, W], got \(s)")
  let (H, W) = (s[2], s[3])
  let (ph, pw) = padding
  precondition(
    ph >= 0 && pw >= 0 && ph < H && pw < W,
    "reflectionPad2D padding (\(ph), \(pw)) needs to be smaller than the image \(H)×\(W)")
  if ph == 0 && pw == 0 { return x }
  let rows = reflectionIndices(length: H, pad: ph)
  let cols = reflectionIndices(length: W, pad: pw)
  let (Ho, Wo) = (rows.count, cols.count)
  let planes = s[0] * s[1]
  var y = Tensor(zeros: [s[0], s[1], Ho, Wo])
  y.withMutablePointer { py in
    x.value.withPointer { px in
      for p in 0..<planes {
        let src = px + p * H * W
        let dst = py + p * Ho * Wo
        for (oy, iy) in rows.enumerated() {
          for (ox, ix) in cols.enumerated() { dst[oy * Wo + ox] = src[iy * W + ix] }
        }
      }
    }
  }
  let tape = x.tape
  guard tape.needsGradient(x) else { return tape.constant(y) }
  return tape.record(y, inputs: [x], backward: ReflectionPadBackward(rows: rows, cols: cols, planes: planes, H: H, W: W))
}

/// The source index of every output position along one axis.
func reflectionIndices(length n: Int, pad: Int) -> [Int] {
  (-pad..<(n + pad)).map { i in i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i) }
}

final class ReflectionPadBackward: CustomBackward {
  let rows, cols: [Int]
  let planes, H, W: Int

  init(rows: [Int], cols: [Int], planes: Int, H: Int, W: Int) {
    self.rows = rows
    self.cols = cols
    self.planes = planes
    self.H = H
    self.W = W
  }

  // The adjoint of the gather: mirrored positions add into their source pixel.
  func backward(outputGradient g: Tensor, inputs: [Tensor]) -> [Tensor?] {
    var dx = Tensor(zeros: inputs[0].shape)
    let (Ho, Wo) = (rows.count, cols.count)
    dx.withMutablePointer { pdx in
      g.withPointer { pg in
        for p in 0..<planes {
          let src = pg + p * Ho * Wo
          let dst = pdx + p * H * W
          for (oy, iy) in rows.enumerated() {
            for (ox, ix) in cols.enumerated() { dst[iy * W + ix] += src[oy * Wo + ox] }
          }
        }
      }
    }
    return [dx]
  }
}
