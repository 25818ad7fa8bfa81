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
    let dz = activation.backward(output: output, gradient: outputGradient)
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
/// The columns of a whole batch lie side by side ([C*kh*kw, B*Ho*Wo], row stride `ld`), so
/// each pass is one GEMM over the batch rather than one small GEMM per image.
struct Window2D {
  let C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo: Int

  var geometry: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) {
    (C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
  }

  func im2col(_ img: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, ld: Int) {
    if Kernels.im2colNarrow(img, col, ld: ld, geometry) { return }
    for c in 0..<C {
      for i in 0..<kh {
        for j in 0..<kw {
          let dst = col + ((c * kh + i) * kw + j) * ld
          // Output columns whose input column is inside the image: ox in lo..<hi.
          let lo = max(0, (pw - j + sw - 1) / sw)
          let last = W - 1 + pw - j  // the last in-image column's ox times sw
          let hi = last < 0 ? 0 : min(Wo, last / sw + 1)
          for oy in 0..<Ho {
            let y = oy * sh - ph + i
            let rowDst = dst + oy * Wo
            if y < 0 || y >= H || lo >= hi {
              rowDst.update(repeating: 0, count: Wo)
              continue
            }
            let src = img + (c * H + y) * W - pw + j
            if lo > 0 { rowDst.update(repeating: 0, count: lo) }
            if sw == 1 {
              (rowDst + lo).update(from: src + lo, count: hi - lo)
            } else {
              for ox in lo..<hi { rowDst[ox] = src[ox * sw] }
            }
            if hi < Wo { (rowDst + hi).update(repeating: 0, count: Wo - hi) }
          }
        }
      }
    }
  }

  /// The columns of a batch [B, C, H, W]: [C*kh*kw, B*Ho*Wo], written in full (no zero fill).
  func columns(_ x: Tensor, batch B: Int) -> Tensor {
    let HW = Ho * Wo
    return Tensor(shape: [C * kh * kw, B * HW]) { pc in
      x.withPointer { px in
        for b in 0..<B { im2col(px + b * C * H * W, pc.baseAddress! + b * HW, ld: B * HW) }
      }
    }
  }

  func col2im(_ col: UnsafePointer<Float>, ld: Int, _ img: UnsafeMutablePointer<Float>) {
    if Kernels.col2imNarrow(col, ld: ld, img, geometry) { return }
    for c in 0..<C {
      for i in 0..<kh {
        for j in 0..<kw {
          let src = col + ((c * kh + i) * kw + j) * ld
          let lo = max(0, (pw - j + sw - 1) / sw)
          let last = W - 1 + pw - j  // the last in-image column's ox times sw
          let hi = last < 0 ? 0 : min(Wo, last / sw + 1)
          if lo >= hi { continue }
          for oy in 0..<Ho {
            let y = oy * sh - ph + i
            if y < 0 || y >= H { continue }
            let dst = img + (c * H + y) * W - pw + j
            let rowSrc = src + oy * Wo
            for ox in lo..<hi { dst[ox * sw] += rowSrc[ox] }
          }
        }
      }
    }
  }
}

/// Adds `bias` [C] to every plane of its channel in `y` [B, C, plane].
func addChannelBias(_ bias: Tensor, to y: UnsafeMutablePointer<Float>, batch B: Int, plane: Int) {
  let C = bias.count
  for b in 0..<B {
    for c in 0..<C {
      let p = y + (b * C + c) * plane
      let v = bias.storage[c]
      for i in 0..<plane { p[i] += v }
    }
  }
}

/// [B, R, P] → [R, B, P] (`inverse`: back), P contiguous floats per block.
func swapBatchAndRows(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, B: Int, R: Int, P: Int, inverse: Bool = false) {
  for b in 0..<B {
    for r in 0..<R {
      let batchMajor = (b * R + r) * P
      let rowMajor = (r * B + b) * P
      if inverse {
        (dst + batchMajor).update(from: src + rowMajor, count: P)
      } else {
        (dst + rowMajor).update(from: src + batchMajor, count: P)
      }
    }
  }
}

/// 2-D convolution over [batch, channels, height, width] with `weight` [out, in, kh, kw]
/// and `bias` [out] (PyTorch's `Conv2d` layout), by im2col and one GEMM over the batch.
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
  let N = B * HW
  let tape = x.tape
  let inputNeedsGradient = tape.isRecording && tape.needsGradient(x)
  let weightNeedsGradient = tape.isRecording && parametersNeedGradient(weight, bias)
  // A direct convolution where the CPU and shape allow (no columns, no GEMM packing); the
  // backward then builds the columns only if the weight gradient needs them.
  if Kernels.conv2DDirectApplies(channels: s[1], kernel: (k[2], k[3]), stride: stride, outputs: O) {
    var done = false
    let y = Tensor(shape: [B, O, Ho, Wo]) { py in
      x.value.withPointer { px in
        weight.value.withPointer { pw in
          done = Kernels.conv2DDirect(px, weight: pw, py.baseAddress!, batch: B, outputs: O, win.geometry)
        }
      }
      guard done else { return }
      if let bv = bias?.value { addChannelBias(bv, to: py.baseAddress!, batch: B, plane: HW) }
      activation.apply(py.baseAddress!, count: B * O * HW)
    }
    if done {
      guard tape.isRecording else { return tape.constant(y) }
      let op = Conv2DBackward(
        window: win, B: B, O: O, cols: nil, output: y, activation: activation,
        inputNeedsGradient: inputNeedsGradient, weightNeedsGradient: weightNeedsGradient)
      return tape.record(y, inputs: bias.map { [x, weight, $0] } ?? [x, weight], backward: op)
    }
  }
  // Every buffer below is written in full before it is read: no zero fill.
  let cols = win.columns(x.value, batch: B)
  let rows = [Float](unsafeUninitializedCapacity: O * N) { pr, count in  // [O, B*HW]
    if let bv = bias?.value {
      for o in 0..<O { (pr.baseAddress! + o * N).initialize(repeating: bv.storage[o], count: N) }
    }
    cols.withPointer { pc in
      weight.value.withPointer { pw in
        gemm(
          false, false, m: O, n: N, k: CKK, pw, lda: CKK, pc, ldb: N, beta: bias == nil ? 0 : 1,
          pr.baseAddress!, ldc: N)
      }
    }
    count = O * N
  }
  let y = Tensor(shape: [B, O, Ho, Wo]) { py in
    rows.withUnsafeBufferPointer { swapBatchAndRows($0.baseAddress!, py.baseAddress!, B: B, R: O, P: HW, inverse: true) }
    activation.apply(py.baseAddress!, count: B * O * HW)
  }
  guard tape.isRecording else { return tape.constant(y) }
  let op = Conv2DBackward(
    window: win, B: B, O: O, cols: cols, output: y, activation: activation,
    inputNeedsGradient: inputNeedsGradient, weightNeedsGradient: weightNeedsGradient)
  return tape.record(y, inputs: bias.map { [x, weight, $0] } ?? [x, weight], backward: op)
}

final class Conv2DBackward: CustomBackward {
  let win: Window2D
  let B, O: Int
  let cols: Tensor?  // [C*kh*kw, B*Ho*Wo]; nil after a direct forward (built here if needed)
  let output: Tensor
  let activation: Activation
  let inputNeedsGradient, weightNeedsGradient: Bool

  init(
    window: Window2D, B: Int, O: Int, cols: Tensor?, output: Tensor, activation: Activation,
    inputNeedsGradient: Bool, weightNeedsGradient: Bool
  ) {
    self.win = window
    self.B = B
    self.O = O
    self.cols = cols
    self.output = output
    self.activation = activation
    self.inputNeedsGradient = inputNeedsGradient
    self.weightNeedsGradient = weightNeedsGradient
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let CKK = win.C * win.kh * win.kw
    let HW = win.Ho * win.Wo
    let N = B * HW
    let dz = activation.backward(output: output, gradient: outputGradient)
    let w = inputs[1]
    var dw: Tensor? = nil
    if weightNeedsGradient {
      let dzRows = [Float](unsafeUninitializedCapacity: O * N) { p, count in  // [O, B*HW]
        dz.withPointer { swapBatchAndRows($0, p.baseAddress!, B: B, R: O, P: HW) }
        count = O * N
      }
      let cols = self.cols ?? win.columns(inputs[0], batch: B)
      dw = Tensor(shape: w.shape) { pdw in
        cols.withPointer { pc in
          dzRows.withUnsafeBufferPointer { pdz in
            gemm(false, true, m: O, n: CKK, k: N, pdz.baseAddress!, lda: N, pc, ldb: N, beta: 0, pdw.baseAddress!, ldc: CKK)
          }
        }
      }
    }
    // The input gradient is the transposed convolution of dz: direct where it applies.
    var dx = Tensor(zeros: inputNeedsGradient ? inputs[0].shape : [0])
    if inputNeedsGradient {
      let direct = dz.withPointer { pdz in
        w.withPointer { pw in
          dx.withMutablePointer { Kernels.conv2DTransposeDirect(pdz, weight: pw, $0, batch: B, inputs: O, win.geometry) }
        }
      }
      if !direct { dx.withMutablePointer { transposedByColumns(dz, weight: w, window: win, batch: B, into: $0) } }
    }
    let dxOut: Tensor? = inputNeedsGradient ? dx : nil
    guard inputs.count > 2 else { return [dxOut, dw] }
    return [dxOut, dw, weightNeedsGradient ? channelBiasGradient(dz, batch: B, channels: O, plane: HW) : nil]
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
  var y = Tensor(zeros: [B, O, Ho, Wo])
  y.withMutablePointer { py in
    // Directly by output phases where the CPU and shape allow, else GEMM and col2im.
    let direct = x.value.withPointer { px in
      weight.value.withPointer { pw in Kernels.conv2DTransposeDirect(px, weight: pw, py, batch: B, inputs: Cin, win.geometry) }
    }
    if !direct { transposedByColumns(x.value, weight: weight.value, window: win, batch: B, into: py) }
    if let bv = bias?.value { addChannelBias(bv, to: py, batch: B, plane: Ho * Wo) }
    activation.apply(py, count: B * O * Ho * Wo)
  }
  let tape = x.tape
  guard tape.isRecording else { return tape.constant(y) }
  let op = ConvTranspose2DBackward(
    window: win, B: B, Cin: Cin, output: y, activation: activation,
    inputNeedsGradient: tape.needsGradient(x), weightNeedsGradient: parametersNeedGradient(weight, bias))
  return tape.record(y, inputs: bias.map { [x, weight, $0] } ?? [x, weight], backward: op)
}

/// Adds the transposed convolution of `x` [B, Cin, H, W] (weights [Cin, O, kh, kw]) into `y`
/// [B, O, Ho, Wo] by one GEMM into columns and col2im (`window`: the convolution it is the
/// adjoint of).
func transposedByColumns(_ x: Tensor, weight: Tensor, window win: Window2D, batch B: Int, into y: UnsafeMutablePointer<Float>) {
  let Cin = x.shape[1]
  let O = win.C
  let OKK = O * win.kh * win.kw
  let HW = win.Ho * win.Wo
  let N = B * HW
  let xRows = [Float](unsafeUninitializedCapacity: Cin * N) { p, count in  // [Cin, B*HW]
    x.withPointer { swapBatchAndRows($0, p.baseAddress!, B: B, R: Cin, P: HW) }
    count = Cin * N
  }
  let cols = [Float](unsafeUninitializedCapacity: OKK * N) { pcb, count in
    weight.withPointer { pw in
      xRows.withUnsafeBufferPointer { pxr in
        gemm(true, false, m: OKK, n: N, k: Cin, pw, lda: OKK, pxr.baseAddress!, ldb: N, beta: 0, pcb.baseAddress!, ldc: N)
      }
    }
    count = OKK * N
  }
  cols.withUnsafeBufferPointer { pcb in
    for b in 0..<B { win.col2im(pcb.baseAddress! + b * HW, ld: N, y + b * O * win.H * win.W) }
  }
}

final class ConvTranspose2DBackward: CustomBackward {
  let win: Window2D
  let B, Cin: Int
  let output: Tensor
  let activation: Activation
  let inputNeedsGradient, weightNeedsGradient: Bool

  init(
    window: Window2D, B: Int, Cin: Int, output: Tensor, activation: Activation,
    inputNeedsGradient: Bool, weightNeedsGradient: Bool
  ) {
    self.win = window
    self.B = B
    self.Cin = Cin
    self.output = output
    self.activation = activation
    self.inputNeedsGradient = inputNeedsGradient
    self.weightNeedsGradient = weightNeedsGradient
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let O = win.C
    let outImage = win.C * win.H * win.W
    let OKK = O * win.kh * win.kw
    let HW = win.Ho * win.Wo
    let N = B * HW
    let dz = activation.backward(output: output, gradient: outputGradient)
    let x = inputs[0]
    let w = inputs[1]
    // The input gradient is a convolution of dz with the same weights: direct where it
    // applies; otherwise, and for the weight gradient, dz's columns.
    var direct = false
    var dx = Tensor(zeros: [0])
    if inputNeedsGradient
      && Kernels.conv2DDirectApplies(channels: O, kernel: (win.kh, win.kw), stride: (win.sh, win.sw), outputs: Cin)
    {
      dx = Tensor(shape: x.shape) { pdx in
        dz.withPointer { pdz in
          w.withPointer { pw in
            direct = Kernels.conv2DDirect(pdz, weight: pw, pdx.baseAddress!, batch: B, outputs: Cin, win.geometry)
          }
        }
      }
    }
    guard weightNeedsGradient || (inputNeedsGradient && !direct) else {
      return inputs.count > 2 ? [inputNeedsGradient ? dx : nil, nil, nil] : [inputNeedsGradient ? dx : nil, nil]
    }
    // Every buffer below is written in full before it is read: no zero fill.
    let dcols = [Float](unsafeUninitializedCapacity: OKK * N) { p, count in
      dz.withPointer { pdz in
        for b in 0..<B { win.im2col(pdz + b * outImage, p.baseAddress! + b * HW, ld: N) }
      }
      count = OKK * N
    }
    var dw: Tensor? = nil
    dcols.withUnsafeBufferPointer { pdcb in
      let pdc = pdcb.baseAddress!
      if weightNeedsGradient {
        let xRows = [Float](unsafeUninitializedCapacity: Cin * N) { p, count in
          x.withPointer { swapBatchAndRows($0, p.baseAddress!, B: B, R: Cin, P: HW) }
          count = Cin * N
        }
        dw = Tensor(shape: w.shape) { pdw in
          xRows.withUnsafeBufferPointer { pxr in
            gemm(false, true, m: Cin, n: OKK, k: N, pxr.baseAddress!, lda: N, pdc, ldb: N, beta: 0, pdw.baseAddress!, ldc: OKK)
          }
        }
      }
      guard inputNeedsGradient && !direct else { return }
      let dxRows = [Float](unsafeUninitializedCapacity: Cin * N) { pdr, count in
        w.withPointer { pw in
          gemm(false, false, m: Cin, n: N, k: OKK, pw, lda: OKK, pdc, ldb: N, beta: 0, pdr.baseAddress!, ldc: N)
        }
        count = Cin * N
      }
      dx = Tensor(shape: x.shape) { p in
        dxRows.withUnsafeBufferPointer { swapBatchAndRows($0.baseAddress!, p.baseAddress!, B: B, R: Cin, P: HW, inverse: true) }
      }
    }
    let dxOut: Tensor? = inputNeedsGradient ? dx : nil
    guard inputs.count > 2 else { return [dxOut, dw] }
    return [dxOut, dw, weightNeedsGradient ? channelBiasGradient(dz, batch: B, channels: O, plane: win.H * win.W) : nil]
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
