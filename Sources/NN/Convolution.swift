import Engine

/// Padding of a convolution.
public enum Padding: Sendable, Equatable {
  /// No padding: only windows that fit entirely.
  case valid
  /// Output length `ceil(L / stride)`; when the total padding is odd the extra zero goes on
  /// the right/bottom (TensorFlow's and Keras' convention).
  case same
  /// Explicit zeros on each side.
  case explicit(Int)

  /// (left padding, output length) for an input length, kernel and stride.
  func resolve(length: Int, kernel: Int, stride: Int) -> (left: Int, output: Int) {
    switch self {
    case .valid: return (0, (length - kernel) / stride + 1)
    case .same:
      let out = (length + stride - 1) / stride
      let total = max((out - 1) * stride + kernel - length, 0)
      return (total / 2, out)
    case .explicit(let p): return (p, (length + 2 * p - kernel) / stride + 1)
    }
  }
}

// MARK: - Conv1D, channels last

/// 1-D convolution over [batch, length, channels] (channels last: the Grammar VAE convolves
/// over steps with the vocabulary as channels), fused with bias and activation, by im2col
/// and one GEMM.
///
/// `weight` is [out, in, kernel] (PyTorch's `Conv1d` layout), `bias` [out]; the result is
/// [batch, outLength, out].
public func conv1D(
  _ x: Var, weight: Var, bias: Var?, stride: Int = 1, padding: Padding = .valid,
  activation: Activation = .identity
) -> Var {
  let w = x.shape
  let k = weight.shape
  precondition(
    x.value.rank == 3 && k.count == 3,
    "conv1D wants x [B, L, C] and weight [O, C, K], got \(w) and \(k)")
  let (B, L, C) = (w[0], w[1], w[2])
  let (O, K) = (k[0], k[2])
  precondition(k[1] == C, "conv1D weight \(k) vs input channels \(C)")
  let (padLeft, Lo) = padding.resolve(length: L, kernel: K, stride: stride)
  precondition(Lo > 0, "conv1D output length \(Lo) for input \(w), kernel \(K), stride \(stride)")
  let geometry = Conv1DGeometry(
    B: B, L: L, C: C, O: O, K: K, Lo: Lo, stride: stride, padLeft: padLeft)
  let cols = geometry.im2col(x.value)  // [B*Lo, K*C]
  let wk = permuteWeight1D(weight.value, O: O, C: C, K: K)  // [O, K*C]
  var y = Tensor(zeros: [B, Lo, O])
  let rows = B * Lo
  let KC = K * C
  y.withMutablePointer { py in
    if let b = bias?.value {
      b.withPointer { pb in for r in 0..<rows { (py + r * O).update(from: pb, count: O) } }
    }
    cols.withPointer { pc in
      wk.withPointer { pw in
        gemm(
          false, true, m: rows, n: O, k: KC, pc, lda: KC, pw, ldb: KC, beta: bias == nil ? 0 : 1,
          py, ldc: O)
      }
    }
    activation.apply(py, count: rows * O)
  }
  let tape = x.tape
  guard tape.needsGradient(x) || tape.needsGradient(weight) || bias.map(tape.needsGradient) == true
  else { return tape.constant(y) }
  let op = Conv1DBackward(
    geometry: geometry, weight: wk, output: y, activation: activation,
    inputNeedsGradient: tape.needsGradient(x))
  return tape.record(y, inputs: bias.map { [x, weight, $0] } ?? [x, weight], backward: op)
}

/// [O, C, K] → [O, K, C] (and back with `inverse`).
func permuteWeight1D(_ w: Tensor, O: Int, C: Int, K: Int, inverse: Bool = false) -> Tensor {
  var out = Tensor(zeros: inverse ? [O, C, K] : [O, K * C])
  for o in 0..<O {
    for c in 0..<C {
      for j in 0..<K {
        if inverse {
          out.storage[(o * C + c) * K + j] = w.storage[(o * K + j) * C + c]
        } else {
          out.storage[(o * K + j) * C + c] = w.storage[(o * C + c) * K + j]
        }
      }
    }
  }
  return out
}

struct Conv1DGeometry {
  let B, L, C, O, K, Lo, stride, padLeft: Int

  /// cols[(b, t), j*C + c] = x[b, t*stride + j - padLeft, c] (zero outside).
  func im2col(_ x: Tensor) -> Tensor {
    let KC = K * C
    var cols = Tensor(zeros: [B * Lo, KC])
    cols.withMutablePointer { pc in
      x.withPointer { px in
        for b in 0..<B {
          for t in 0..<Lo {
            let row = pc + (b * Lo + t) * KC
            let start = t * stride - padLeft
            let lo = max(0, -start)
            let hi = min(K, L - start)  // valid j range
            if lo < hi {
              (row + lo * C).update(from: px + (b * L + start + lo) * C, count: (hi - lo) * C)
            }
          }
        }
      }
    }
    return cols
  }

  /// Adds the columns back into a [B, L, C] gradient (the adjoint of `im2col`).
  func col2im(_ cols: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>) {
    let KC = K * C
    for b in 0..<B {
      for t in 0..<Lo {
        let row = cols + (b * Lo + t) * KC
        let start = t * stride - padLeft
        let lo = max(0, -start)
        let hi = min(K, L - start)
        if lo < hi {
          let dst = dx + (b * L + start + lo) * C
          let src = row + lo * C
          for i in 0..<((hi - lo) * C) { dst[i] += src[i] }
        }
      }
    }
  }
}

/// Keeps no im2col columns (K times the input's size): the backward rebuilds them from the
/// input, which costs a copy instead of holding them from forward to backward.
final class Conv1DBackward: CustomBackward {
  let g: Conv1DGeometry
  let weight, output: Tensor
  let activation: Activation
  let inputNeedsGradient: Bool

  init(
    geometry: Conv1DGeometry, weight: Tensor, output: Tensor,
    activation: Activation, inputNeedsGradient: Bool
  ) {
    self.g = geometry
    self.weight = weight
    self.output = output
    self.activation = activation
    self.inputNeedsGradient = inputNeedsGradient
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let rows = g.B * g.Lo
    let KC = g.K * g.C
    let O = g.O
    var dz = outputGradient
    dz.withMutablePointer { pg in
      output.withPointer { activation.backward(output: $0, gradient: pg, count: rows * O) }
    }
    var dx: Tensor? = nil
    var dwk = Tensor(zeros: [O, KC])
    let cols = g.im2col(inputs[0])
    dz.withPointer { pdz in
      dwk.withMutablePointer { pdw in
        cols.withPointer { pc in
          gemm(true, false, m: O, n: KC, k: rows, pdz, lda: O, pc, ldb: KC, beta: 0, pdw, ldc: KC)
        }
      }
      if inputNeedsGradient {
        var dcols = Tensor(zeros: [rows, KC])
        dcols.withMutablePointer { pdc in
          weight.withPointer { pw in
            gemm(
              false, false, m: rows, n: KC, k: O, pdz, lda: O, pw, ldb: KC, beta: 0, pdc, ldc: KC)
          }
        }
        var d = Tensor(zeros: [g.B, g.L, g.C])
        d.withMutablePointer { pdx in dcols.withPointer { g.col2im($0, into: pdx) } }
        dx = d
      }
    }
    let dw = permuteWeight1D(dwk, O: O, C: g.C, K: g.K, inverse: true)
    guard inputs.count > 2 else { return [dx, dw] }
    return [dx, dw, featureBiasGradient(dz, rows: rows, features: O)]
  }
}

/// 1-D convolution layer over [batch, length, channels].
///
/// Parameters: `"<name>.weight"` [out, in, kernel] (Glorot uniform), `"<name>.bias"` [out].
public struct Conv1D: Layer {
  public let weight: Parameter
  public let bias: Parameter?
  public let stride: Int
  public let padding: Padding
  public let activation: Activation

  public init(
    inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1,
    padding: Padding = .valid, activation: Activation = .identity, useBias: Bool = true,
    name: String, rng: inout SeededRandom
  ) {
    weight = Parameter(
      qualifiedName(name, "weight"),
      Initializer.glorotUniform(
        [outputChannels, inputChannels, kernelSize], fanIn: inputChannels * kernelSize,
        fanOut: outputChannels * kernelSize, rng: &rng))
    bias = useBias ? Parameter(qualifiedName(name, "bias"), Tensor(zeros: [outputChannels])) : nil
    self.stride = stride
    self.padding = padding
    self.activation = activation
  }

  public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    conv1D(
      x, weight: tape.parameter(weight), bias: bias.map { tape.parameter($0) }, stride: stride,
      padding: padding, activation: activation)
  }
}

// MARK: - 2-D convolutions, NCHW

/// Window geometry shared by Conv2D and its transpose: an image [C, H, W] and its columns
/// [C*kh*kw, Ho*Wo] with `col[(c*kh + i)*kw + j, oy*Wo + ox] = img[c, oy*sh - ph + i, ox*sw - pw + j]`.
struct Window2D {
  let C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo: Int

  func im2col(_ img: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
    for c in 0..<C {
      for i in 0..<kh {
        for j in 0..<kw {
          let dst = col + ((c * kh + i) * kw + j) * Ho * Wo
          for oy in 0..<Ho {
            let y = oy * sh - ph + i
            let rowDst = dst + oy * Wo
            if y < 0 || y >= H {
              rowDst.update(repeating: 0, count: Wo)
              continue
            }
            let src = img + (c * H + y) * W
            for ox in 0..<Wo {
              let x = ox * sw - pw + j
              rowDst[ox] = (x >= 0 && x < W) ? src[x] : 0
            }
          }
        }
      }
    }
  }

  func col2im(_ col: UnsafePointer<Float>, _ img: UnsafeMutablePointer<Float>) {
    for c in 0..<C {
      for i in 0..<kh {
        for j in 0..<kw {
          let src = col + ((c * kh + i) * kw + j) * Ho * Wo
          for oy in 0..<Ho {
            let y = oy * sh - ph + i
            if y < 0 || y >= H { continue }
            let dst = img + (c * H + y) * W
            let rowSrc = src + oy * Wo
            for ox in 0..<Wo {
              let x = ox * sw - pw + j
              if x >= 0 && x < W { dst[x] += rowSrc[ox] }
            }
          }
        }
      }
    }
  }
}

/// 2-D convolution over [batch, channels, height, width] with `weight` [out, in, kh, kw]
/// and `bias` [out] (PyTorch's `Conv2d` layout), by per-image im2col and GEMM.
public func conv2D(
  _ x: Var, weight: Var, bias: Var?, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
  activation: Activation = .identity
) -> Var {
  let s = x.shape
  let k = weight.shape
  precondition(s.count == 4 && k.count == 4 && k[1] == s[1], "conv2D x \(s) vs weight \(k)")
  let (B, O) = (s[0], k[0])
  let Ho = (s[2] + 2 * padding.0 - k[2]) / stride.0 + 1
  let Wo = (s[3] + 2 * padding.1 - k[3]) / stride.1 + 1
  precondition(Ho > 0 && Wo > 0, "conv2D output \(Ho)×\(Wo) for input \(s), kernel \(k)")
  let win = Window2D(
    C: s[1], H: s[2], W: s[3], kh: k[2], kw: k[3], sh: stride.0, sw: stride.1, ph: padding.0,
    pw: padding.1, Ho: Ho, Wo: Wo)
  let CKK = s[1] * k[2] * k[3]
  let HW = Ho * Wo
  var cols = Tensor(zeros: [B, CKK, HW])
  var y = Tensor(zeros: [B, O, Ho, Wo])
  cols.withMutablePointer { pc in
    y.withMutablePointer { py in
      x.value.withPointer { px in
        weight.value.withPointer { pw in
          for b in 0..<B {
            win.im2col(px + b * s[1] * s[2] * s[3], pc + b * CKK * HW)
            if let bv = bias?.value {
              for o in 0..<O { (py + (b * O + o) * HW).update(repeating: bv.storage[o], count: HW) }
            }
            gemm(
              false, false, m: O, n: HW, k: CKK, pw, lda: CKK, pc + b * CKK * HW, ldb: HW,
              beta: bias == nil ? 0 : 1, py + b * O * HW, ldc: HW)
          }
        }
      }
      activation.apply(py, count: B * O * HW)
    }
  }
  let tape = x.tape
  guard tape.isRecording else { return tape.constant(y) }
  let op = Conv2DBackward(
    window: win, B: B, O: O, cols: cols, output: y, activation: activation,
    inputNeedsGradient: tape.needsGradient(x))
  return tape.record(y, inputs: bias.map { [x, weight, $0] } ?? [x, weight], backward: op)
}

final class Conv2DBackward: CustomBackward {
  let win: Window2D
  let B, O: Int
  let cols, output: Tensor
  let activation: Activation
  let inputNeedsGradient: Bool

  init(
    window: Window2D, B: Int, O: Int, cols: Tensor, output: Tensor, activation: Activation,
    inputNeedsGradient: Bool
  ) {
    self.win = window
    self.B = B
    self.O = O
    self.cols = cols
    self.output = output
    self.activation = activation
    self.inputNeedsGradient = inputNeedsGradient
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let CKK = win.C * win.kh * win.kw
    let HW = win.Ho * win.Wo
    let imageSize = win.C * win.H * win.W
    var dz = outputGradient
    dz.withMutablePointer { pg in
      output.withPointer { activation.backward(output: $0, gradient: pg, count: B * O * HW) }
    }
    let w = inputs[1]
    var dw = Tensor(zeros: w.shape)
    var dx = Tensor(zeros: inputNeedsGradient ? inputs[0].shape : [0])
    var dcols = [Float](repeating: 0, count: inputNeedsGradient ? CKK * HW : 0)
    dz.withPointer { pdz in
      cols.withPointer { pc in
        w.withPointer { pw in
          dw.withMutablePointer { pdw in
            for b in 0..<B {
              gemm(
                false, true, m: O, n: CKK, k: HW, pdz + b * O * HW, lda: HW, pc + b * CKK * HW,
                ldb: HW, beta: 1, pdw, ldc: CKK)
              guard inputNeedsGradient else { continue }
              dcols.withUnsafeMutableBufferPointer { pdc in
                gemm(
                  true, false, m: CKK, n: HW, k: O, pw, lda: CKK, pdz + b * O * HW, ldb: HW,
                  beta: 0, pdc.baseAddress!, ldc: HW)
                dx.withMutablePointer { win.col2im(pdc.baseAddress!, $0 + b * imageSize) }
              }
            }
          }
        }
      }
    }
    let dxOut: Tensor? = inputNeedsGradient ? dx : nil
    guard inputs.count > 2 else { return [dxOut, dw] }
    return [dxOut, dw, channelBiasGradient(dz, batch: B, channels: O, plane: HW)]
  }
}

/// 2-D convolution layer over [batch, channels, height, width].
///
/// Parameters: `"<name>.weight"` [out, in, kh, kw] (He normal), `"<name>.bias"` [out].
public struct Conv2D: Layer {
  public let weight: Parameter
  public let bias: Parameter?
  public let stride: (Int, Int)
  public let padding: (Int, Int)
  public let activation: Activation

  public init(
    inputChannels: Int, outputChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
    padding: (Int, Int) = (0, 0), activation: Activation = .identity, useBias: Bool = true,
    name: String, rng: inout SeededRandom
  ) {
    let fanIn = inputChannels * kernelSize.0 * kernelSize.1
    weight = Parameter(
      qualifiedName(name, "weight"),
      Initializer.heNormal(
        [outputChannels, inputChannels, kernelSize.0, kernelSize.1], fanIn: fanIn, rng: &rng))
    bias = useBias ? Parameter(qualifiedName(name, "bias"), Tensor(zeros: [outputChannels])) : nil
    self.stride = stride
    self.padding = padding
    self.activation = activation
  }

  public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    conv2D(
      x, weight: tape.parameter(weight), bias: bias.map { tape.parameter($0) }, stride: stride,
      padding: padding, activation: activation)
  }
}

/// Transposed 2-D convolution (the adjoint of `conv2D`) over [batch, in, H, W] with
/// `weight` [in, out, kh, kw] (PyTorch's `ConvTranspose2d` layout) and `bias` [out].
///
/// Output size `(H - 1)·stride - 2·padding + kernel + outputPadding` per spatial axis.
public func convTranspose2D(
  _ x: Var, weight: Var, bias: Var?, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
  outputPadding: (Int, Int) = (0, 0), activation: Activation = .identity
) -> Var {
  let s = x.shape
  let k = weight.shape
  precondition(
    s.count == 4 && k.count == 4 && k[0] == s[1], "convTranspose2D x \(s) vs weight \(k)")
  let (B, Cin, H, W, O) = (s[0], s[1], s[2], s[3], k[1])
  let Ho = (H - 1) * stride.0 - 2 * padding.0 + k[2] + outputPadding.0
  let Wo = (W - 1) * stride.1 - 2 * padding.1 + k[3] + outputPadding.1
  precondition(Ho > 0 && Wo > 0, "convTranspose2D output \(Ho)×\(Wo) for input \(s), kernel \(k)")
  // The output image plays the role of the convolution's input: its columns are [O*kh*kw, H*W].
  let win = Window2D(
    C: O, H: Ho, W: Wo, kh: k[2], kw: k[3], sh: stride.0, sw: stride.1, ph: padding.0,
    pw: padding.1, Ho: H, Wo: W)
  let OKK = O * k[2] * k[3]
  let HW = H * W
  var y = Tensor(zeros: [B, O, Ho, Wo])
  var cols = [Float](repeating: 0, count: OKK * HW)
  y.withMutablePointer { py in
    x.value.withPointer { px in
      weight.value.withPointer { pw in
        cols.withUnsafeMutableBufferPointer { pcb in
          let pc = pcb.baseAddress!
          for b in 0..<B {
            gemm(
              true, false, m: OKK, n: HW, k: Cin, pw, lda: OKK, px + b * Cin * HW, ldb: HW, beta: 0,
              pc, ldc: HW)
            win.col2im(pc, py + b * O * Ho * Wo)
          }
        }
      }
    }
    if let bv = bias?.value {
      for b in 0..<B {
        for o in 0..<O {
          let p = py + (b * O + o) * Ho * Wo
          for i in 0..<(Ho * Wo) { p[i] += bv.storage[o] }
        }
      }
    }
    activation.apply(py, count: B * O * Ho * Wo)
  }
  let tape = x.tape
  guard tape.isRecording else { return tape.constant(y) }
  let op = ConvTranspose2DBackward(
    window: win, B: B, Cin: Cin, output: y, activation: activation,
    inputNeedsGradient: tape.needsGradient(x))
  return tape.record(y, inputs: bias.map { [x, weight, $0] } ?? [x, weight], backward: op)
}

final class ConvTranspose2DBackward: CustomBackward {
  let win: Window2D
  let B, Cin: Int
  let output: Tensor
  let activation: Activation
  let inputNeedsGradient: Bool

  init(
    window: Window2D, B: Int, Cin: Int, output: Tensor, activation: Activation,
    inputNeedsGradient: Bool
  ) {
    self.win = window
    self.B = B
    self.Cin = Cin
    self.output = output
    self.activation = activation
    self.inputNeedsGradient = inputNeedsGradient
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let O = win.C
    let outImage = win.C * win.H * win.W
    let OKK = O * win.kh * win.kw
    let HW = win.Ho * win.Wo
    var dz = outputGradient
    dz.withMutablePointer { pg in
      output.withPointer { activation.backward(output: $0, gradient: pg, count: B * outImage) }
    }
    let x = inputs[0]
    let w = inputs[1]
    var dw = Tensor(zeros: w.shape)
    var dx = Tensor(zeros: inputNeedsGradient ? x.shape : [0])
    var dcols = [Float](repeating: 0, count: OKK * HW)
    dz.withPointer { pdz in
      x.withPointer { px in
        w.withPointer { pw in
          dw.withMutablePointer { pdw in
            dcols.withUnsafeMutableBufferPointer { pdcb in
              let pdc = pdcb.baseAddress!
              for b in 0..<B {
                win.im2col(pdz + b * outImage, pdc)
                gemm(
                  false, true, m: Cin, n: OKK, k: HW, px + b * Cin * HW, lda: HW, pdc, ldb: HW,
                  beta: 1, pdw, ldc: OKK)
                if inputNeedsGradient {
                  dx.withMutablePointer {
                    gemm(
                      false, false, m: Cin, n: HW, k: OKK, pw, lda: OKK, pdc, ldb: HW, beta: 0,
                      $0 + b * Cin * HW, ldc: HW)
                  }
                }
              }
            }
          }
        }
      }
    }
    let dxOut: Tensor? = inputNeedsGradient ? dx : nil
    guard inputs.count > 2 else { return [dxOut, dw] }
    return [dxOut, dw, channelBiasGradient(dz, batch: B, channels: O, plane: win.H * win.W)]
  }
}

/// Transposed 2-D convolution layer over [batch, in, H, W].
///
/// Parameters: `"<name>.weight"` [in, out, kh, kw] (He normal), `"<name>.bias"` [out].
public struct ConvTranspose2D: Layer {
  public let weight: Parameter
  public let bias: Parameter?
  public let stride: (Int, Int)
  public let padding: (Int, Int)
  public let outputPadding: (Int, Int)
  public let activation: Activation

  public init(
    inputChannels: Int, outputChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
    padding: (Int, Int) = (0, 0), outputPadding: (Int, Int) = (0, 0),
    activation: Activation = .identity, useBias: Bool = true, name: String,
    rng: inout SeededRandom
  ) {
    let fanIn = inputChannels * kernelSize.0 * kernelSize.1
    weight = Parameter(
      qualifiedName(name, "weight"),
      Initializer.heNormal(
        [inputChannels, outputChannels, kernelSize.0, kernelSize.1], fanIn: fanIn, rng: &rng))
    bias = useBias ? Parameter(qualifiedName(name, "bias"), Tensor(zeros: [outputChannels])) : nil
    self.stride = stride
    self.padding = padding
    self.outputPadding = outputPadding
    self.activation = activation
  }

  public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    convTranspose2D(
      x, weight: tape.parameter(weight), bias: bias.map { tape.parameter($0) }, stride: stride,
      padding: padding, outputPadding: outputPadding, activation: activation)
  }
}
