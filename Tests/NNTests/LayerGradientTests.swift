import Engine
import Foundation
import NN
import TestSupport
import Testing

func randn(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
  var rng = SeededRandom(seed: seed)
  return Tensor(randomNormal: shape, std: std, rng: &rng)
}

@Suite struct LayerGradientTests {
  @Test(arguments: [Activation.identity, .tanh, .sigmoid])
  func denseGradients(activation: Activation) {
    let r = checkGradients([
      randn([2, 3, 4], seed: 1), randn([5, 4], seed: 2), randn([5], seed: 3),
    ]) { v in
      dense(v[0], weight: v[1], bias: v[2], activation: activation)
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  @Test func denseWithoutBias() {
    let r = checkGradients([randn([3, 4], seed: 1), randn([2, 4], seed: 2)]) { v in
      dense(v[0], weight: v[1], bias: nil)
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  struct Conv1DCase: CustomTestStringConvertible, Sendable {
    var id: String
    var stride: Int
    var padding: Padding
    var testDescription: String { id }
  }

  @Test(arguments: [
    Conv1DCase(id: "valid", stride: 1, padding: .valid),
    Conv1DCase(id: "valid-stride2", stride: 2, padding: .valid),
    Conv1DCase(id: "same", stride: 1, padding: .same),
    Conv1DCase(id: "same-stride2", stride: 2, padding: .same),
  ])
  func conv1DGradients(c: Conv1DCase) {
    let x = randn([2, 7, 3], seed: 4)
    let w = randn([4, 3, 3], seed: 5)
    let b = randn([4], seed: 6)
    let r = checkGradients([x, w, b]) { v in
      conv1D(
        v[0], weight: v[1], bias: v[2], stride: c.stride, padding: c.padding, activation: .tanh)
    }
    #expect(r.worstError < 1e-2, "\(c.id): \(r)")
  }

  @Test func conv1DSameKeepsLength() {
    let tape = Tape(recording: false)
    let y = conv1D(
      tape.constant(randn([1, 7, 2], seed: 1)), weight: tape.constant(randn([3, 2, 4], seed: 2)),
      bias: nil, padding: .same)
    #expect(y.shape == [1, 7, 3])
  }

  @Test func conv2DGradients() {
    let x = randn([2, 3, 5, 6], seed: 7)
    let w = randn([4, 3, 3, 2], seed: 8)
    let b = randn([4], seed: 9)
    for (stride, padding) in [((1, 1), (0, 0)), ((2, 1), (1, 1)), ((2, 2), (1, 0))] {
      let r = checkGradients([x, w, b]) { v in
        conv2D(
          v[0], weight: v[1], bias: v[2], stride: stride, padding: padding, activation: .sigmoid)
      }
      #expect(r.worstError < 1e-2, "stride \(stride) padding \(padding): \(r)")
    }
  }

  @Test func convTranspose2DGradients() {
    let x = randn([2, 3, 3, 4], seed: 10)
    let w = randn([3, 2, 3, 3], seed: 11)
    let b = randn([2], seed: 12)
    for (stride, padding, outPad) in [
      ((1, 1), (0, 0), (0, 0)), ((2, 2), (1, 1), (1, 1)), ((2, 1), (0, 1), (1, 0)),
    ] {
      let r = checkGradients([x, w, b]) { v in
        convTranspose2D(
          v[0], weight: v[1], bias: v[2], stride: stride, padding: padding, outputPadding: outPad)
      }
      #expect(r.worstError < 1e-2, "stride \(stride) padding \(padding): \(r)")
    }
    let tape = Tape(recording: false)
    let y = convTranspose2D(
      tape.constant(x), weight: tape.constant(w), bias: nil, stride: (2, 2), padding: (1, 1),
      outputPadding: (1, 1))
    #expect(y.shape == [2, 2, 6, 8])
  }

  /// The fused piecewise-linear activations (the DCGAN's ReLU and leaky ReLU) and the DCGAN's
  /// own geometry, 4×4 kernels at stride 2 with padding 1, in both directions. Seeds whose
  /// pre-activations stay clear of the kink by more than the step.
  @Test(arguments: [Activation.relu, .leakyRelu(slope: 0.2), .sigmoid, .softplus])
  func dcganGeometryGradients(activation: Activation) {
    let rd = checkGradients([randn([3, 4], seed: 21), randn([5, 4], seed: 22), randn([5], seed: 23)]) { v in
      dense(v[0], weight: v[1], bias: v[2], activation: activation)
    }
    #expect(rd.worstError < 1e-2, "dense: \(rd)")
    let rc = checkGradients([randn([2, 2, 6, 6], seed: 24), randn([3, 2, 4, 4], seed: 25), randn([3], seed: 26)]) { v in
      conv2D(v[0], weight: v[1], bias: v[2], stride: (2, 2), padding: (1, 1), activation: activation)
    }
    #expect(rc.worstError < 1e-2, "conv2D: \(rc)")
    let rt = checkGradients([randn([2, 3, 3, 3], seed: 27), randn([3, 2, 4, 4], seed: 28), randn([2], seed: 29)]) { v in
      convTranspose2D(v[0], weight: v[1], bias: v[2], stride: (2, 2), padding: (1, 1), activation: activation)
    }
    #expect(rt.worstError < 1e-2, "convTranspose2D: \(rt)")
  }

  /// The batched im2col/GEMM path against the definition, summed term by term, on
  /// geometries where windows overhang every border (padding, strides 1 and 2, a kernel as
  /// wide as the padded image).
  @Test func conv2DMatchesTheDefinition() {
    for (shape, kernel, stride, padding) in [
      ([3, 2, 7, 6], [4, 2, 4, 4], (2, 2), (1, 1)), ([2, 3, 5, 4], [2, 3, 3, 2], (1, 2), (1, 0)),
      ([2, 1, 3, 3], [3, 1, 5, 5], (1, 1), (1, 1)),
      // The vectorised narrow-image path's limits (width 32, output width 16), and a width
      // past them that takes the general loop.
      ([1, 2, 3, 32], [2, 2, 2, 2], (1, 2), (0, 0)), ([1, 2, 4, 37], [2, 2, 3, 4], (1, 2), (1, 1)),
      // The direct path (at least 64 taps, 16 outputs): a partial last channel block and one
      // row of 9; the DCGAN's 4×4 stride 2 with two rows at a time and an odd row count; a
      // row of 34 in chunks of 14 across at stride 1, down at stride 2; stride 3 falls back.
      ([2, 8, 9, 9], [40, 8, 3, 3], (1, 1), (1, 1)), ([2, 16, 14, 14], [17, 16, 4, 4], (2, 2), (1, 1)),
      ([1, 4, 5, 33], [16, 4, 4, 4], (2, 1), (0, 2)), ([1, 8, 9, 9], [16, 8, 3, 3], (1, 3), (0, 0)),
    ] {
      let x = randn(shape, seed: 31)
      let w = randn(kernel, seed: 32)
      let b = randn([kernel[0]], seed: 33)
      let tape = Tape(recording: false)
      let y = conv2D(
        tape.constant(x), weight: tape.constant(w), bias: tape.constant(b), stride: stride, padding: padding
      ).value
      let (B, C, H, W, O, kh, kw) = (shape[0], shape[1], shape[2], shape[3], kernel[0], kernel[2], kernel[3])
      let Ho = (H + 2 * padding.0 - kh) / stride.0 + 1
      let Wo = (W + 2 * padding.1 - kw) / stride.1 + 1
      #expect(y.shape == [B, O, Ho, Wo])
      var worst: Float = 0
      for n in 0..<B {
        for o in 0..<O {
          for oy in 0..<Ho {
            for ox in 0..<Wo {
              var sum = b.storage[o]
              for c in 0..<C {
                for i in 0..<kh {
                  for j in 0..<kw {
                    let (iy, ix) = (oy * stride.0 - padding.0 + i, ox * stride.1 - padding.1 + j)
                    guard iy >= 0, iy < H, ix >= 0, ix < W else { continue }
                    sum += x.storage[((n * C + c) * H + iy) * W + ix] * w.storage[((o * C + c) * kh + i) * kw + j]
                  }
                }
              }
              worst = max(worst, abs(sum - y.storage[((n * O + o) * Ho + oy) * Wo + ox]))
            }
          }
        }
      }
      #expect(worst < 1e-4, "\(shape) * \(kernel) stride \(stride) padding \(padding): worst \(worst)")
    }
  }

  /// The direct convolution (taken on AVX-512 machines for layers with at least 64 taps and
  /// 16 outputs) with its backward, which builds the columns the weight gradient needs:
  /// both strides, padding, a partial channel block, with and without the weight gradient.
  @Test func directConv2DGradients() {
    #expect(
      Kernels.conv2DDirectApplies(channels: 8, kernel: (3, 3), stride: (2, 1), outputs: 18)
        == (Kernels.instructionSet == "avx512f"))
    #expect(!Kernels.conv2DDirectApplies(channels: 8, kernel: (3, 3), stride: (1, 3), outputs: 18))
    // 16 inputs, so the input gradient (a transposed convolution) is direct too where its
    // taps per phase reach 64: stride 1 with 3×3, stride 2 with 4×4; 3×3 at stride 2 falls back.
    let x = randn([2, 16, 5, 6], seed: 41)
    let b = randn([18], seed: 43)
    for (kernel, stride, padding) in [(3, (1, 1), (1, 1)), (3, (2, 2), (1, 0)), (3, (1, 2), (0, 1)), (4, (2, 2), (1, 1))] {
      let w = randn([18, 16, kernel, kernel], seed: 42)
      let r = checkGradients([x, w, b]) { v in
        conv2D(v[0], weight: v[1], bias: v[2], stride: stride, padding: padding, activation: .sigmoid)
      }
      #expect(r.worstError < 1e-2, "kernel \(kernel) stride \(stride) padding \(padding): \(r)")
      let ri = checkGradients([x]) { v in
        let tape = v[0].tape
        return conv2D(v[0], weight: tape.constant(w), bias: nil, stride: stride, padding: padding, activation: .sigmoid)
      }
      #expect(ri.worstError < 1e-2, "input only, kernel \(kernel) stride \(stride): \(ri)")
    }
  }

  /// The direct transposed convolution (by output phases) against the definition, and its
  /// backward (a direct convolution of the output gradient, columns for the weights).
  @Test func directConvTranspose2D() {
    #expect(
      Kernels.conv2DDirectApplies(channels: 16, kernel: (4, 4), stride: (2, 2), outputs: 18)
        == (Kernels.instructionSet == "avx512f"))
    for (shape, kernel, stride, padding, outPad) in [
      ([2, 18, 3, 4], [18, 16, 4, 4], (2, 2), (1, 1), (1, 0)), ([1, 18, 4, 3], [18, 17, 3, 3], (1, 1), (1, 0), (0, 0)),
      ([1, 32, 3, 4], [32, 16, 3, 4], (3, 2), (1, 0), (2, 1)),
    ] {
      let x = randn(shape, seed: 51)
      let w = randn(kernel, seed: 52)
      let b = randn([kernel[1]], seed: 53)
      let tape = Tape(recording: false)
      let y = convTranspose2D(
        tape.constant(x), weight: tape.constant(w), bias: tape.constant(b), stride: stride, padding: padding,
        outputPadding: outPad
      ).value
      let (B, C, H, W, O, kh, kw) = (shape[0], shape[1], shape[2], shape[3], kernel[1], kernel[2], kernel[3])
      let Ho = (H - 1) * stride.0 - 2 * padding.0 + kh + outPad.0
      let Wo = (W - 1) * stride.1 - 2 * padding.1 + kw + outPad.1
      #expect(y.shape == [B, O, Ho, Wo])
      var want = [Float](repeating: 0, count: B * O * Ho * Wo)
      for n in 0..<B {
        for o in 0..<O { for p in 0..<(Ho * Wo) { want[(n * O + o) * Ho * Wo + p] = b.storage[o] } }
        for c in 0..<C {
          for iy in 0..<H {
            for ix in 0..<W {
              for o in 0..<O {
                for i in 0..<kh {
                  for j in 0..<kw {
                    let (Y, X) = (iy * stride.0 - padding.0 + i, ix * stride.1 - padding.1 + j)
                    guard Y >= 0, Y < Ho, X >= 0, X < Wo else { continue }
                    want[((n * O + o) * Ho + Y) * Wo + X] +=
                      w.storage[((c * O + o) * kh + i) * kw + j] * x.storage[((n * C + c) * H + iy) * W + ix]
                  }
                }
              }
            }
          }
        }
      }
      let worst = zip(want, y.storage).map { abs($0 - $1) }.max() ?? 0
      #expect(worst < 1e-4, "\(shape) * \(kernel) stride \(stride): worst \(worst)")
      // Every weight for the smaller layers; the input and bias for the stride-3 one.
      let r = kernel[0] == 32
        ? checkGradients([x, b]) { v in
          convTranspose2D(
            v[0], weight: v[0].tape.constant(w), bias: v[1], stride: stride, padding: padding, outputPadding: outPad,
            activation: .sigmoid)
        }
        : checkGradients([x, w, b]) { v in
          convTranspose2D(
            v[0], weight: v[1], bias: v[2], stride: stride, padding: padding, outputPadding: outPad, activation: .sigmoid)
        }
      #expect(r.worstError < 1e-2, "\(shape) * \(kernel) stride \(stride): \(r)")
    }
  }

  @Test func convTransposeIsAdjointOfConv() {
    // <conv(x), y> == <x, convT(y)> for the same weight (no bias); the second geometry is
    // wider than the vectorised narrow-image path takes.
    // The third: both directions direct (AVX-512).
    for (shape, outputPadding, kernel) in [
      ([1, 2, 6, 5], (1, 0), [3, 2, 3, 3]), ([1, 2, 5, 40], (0, 1), [3, 2, 3, 3]), ([1, 16, 7, 8], (1, 0), [32, 16, 4, 4]),
    ] {
      let x = randn(shape, seed: 1)
      let w = randn(kernel, seed: 2)
      let tape = Tape(recording: false)
      let cx = conv2D(
        tape.constant(x), weight: tape.constant(w), bias: nil, stride: (2, 2), padding: (1, 1)
      ).value
      let y = randn(cx.shape, seed: 3)
      let ty = convTranspose2D(
        tape.constant(y), weight: tape.constant(w), bias: nil, stride: (2, 2), padding: (1, 1),
        outputPadding: outputPadding
      ).value
      #expect(ty.shape == x.shape)
      let a = zip(cx.storage, y.storage).map { $0 * $1 }.reduce(0, +)
      let b = zip(x.storage, ty.storage).map { $0 * $1 }.reduce(0, +)
      #expect(abs(a - b) < 1e-3 * max(1, abs(a)), "\(shape)")
    }
  }

  @Test func frozenParametersGetNoGradientAndLeaveTheInputGradient() {
    // A frozen layer's weights are constants on the tape: no weight gradient is computed,
    // and the input gradient is the one of the unfrozen layer.
    var rng = SeededRandom(seed: 5)
    let conv = Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: (4, 4), stride: (2, 2), padding: (1, 1), name: "c", rng: &rng)
    let deconv = ConvTranspose2D(inputChannels: 3, outputChannels: 2, kernelSize: (4, 4), stride: (2, 2), padding: (1, 1), name: "d", rng: &rng)
    let fc = Dense(inputSize: 2 * 8 * 8, outputSize: 1, name: "f", rng: &rng)
    let layers = conv.parameters + deconv.parameters + fc.parameters
    let x = randn([2, 2, 8, 8], seed: 6)
    func inputGradient(frozen: Bool) -> Tensor {
      for p in layers { p.gradient = Tensor(zeros: p.value.shape) }
      let tape = Tape()
      if frozen { tape.freeze(layers) }
      let v = tape.variable(x)
      let y = fc(deconv(conv(v, tape: tape), tape: tape).reshaped([2, 2 * 8 * 8]), tape: tape)
      tape.backward(sum(y))
      return tape.gradient(of: v)!
    }
    let free = inputGradient(frozen: false)
    #expect(layers.contains { p in p.gradient.storage.contains { $0 != 0 } })
    let frozen = inputGradient(frozen: true)
    #expect(layers.allSatisfy { p in p.gradient.storage.allSatisfy { $0 == 0 } })
    #expect(free.storage == frozen.storage)
  }

  @Test func batchNormTrainingGradientsLastAxis() {
    let r = checkGradients([
      randn([4, 3, 5], seed: 13), randn([5], seed: 14), randn([5], seed: 15),
    ]) { v in
      batchNorm(v[0], scale: v[1], offset: v[2]).0
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  @Test func batchNormTrainingGradientsChannels() {
    // Planes of 16 (one full lane block) and of 35 (two blocks and a tail).
    for shape in [[3, 2, 4, 4], [2, 3, 5, 7]] {
      let r = checkGradients([
        randn(shape, seed: 16), randn([shape[1]], seed: 17), randn([shape[1]], seed: 18),
      ]) { v in
        batchNorm(v[0], scale: v[1], offset: v[2], axis: 1).0
      }
      #expect(r.worstError < 1e-2, "\(shape): \(r)")
    }
  }

  @Test func batchNormInferenceGradients() {
    let stats = BatchStatistics(mean: [0.1, -0.2, 0.3], variance: [1.5, 0.5, 2])
    let r = checkGradients([randn([4, 3], seed: 19), randn([3], seed: 20), randn([3], seed: 21)]) {
      v in
      batchNorm(v[0], scale: v[1], offset: v[2], statistics: stats).0
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  @Test func batchNormLayerUpdatesRunningStatistics() {
    let bn = BatchNorm(featureCount: 2, momentum: 0.1, name: "bn")
    let x = Tensor(shape: [3, 2], storage: [1, 10, 2, 20, 3, 30])
    let tape = Tape()
    let y = bn(tape.constant(x), tape: tape, training: true).value
    // Batch mean (2, 20), unbiased variance (1, 100).
    #expect(abs(bn.runningMean.value.storage[0] - 0.2) < 1e-6)
    #expect(abs(bn.runningMean.value.storage[1] - 2) < 1e-5)
    #expect(abs(bn.runningVariance.value.storage[0] - (0.9 + 0.1)) < 1e-5)
    #expect(abs(bn.runningVariance.value.storage[1] - (0.9 + 10)) < 1e-4)
    #expect(abs(y.storage[0] + 1.2247) < 1e-3)  // (1 − 2) / sqrt(2/3)
    let inference = bn(tape.constant(x), tape: tape, training: false).value
    #expect(abs(inference.storage[0] - (1 - 0.2) / (1.0 + 1e-5).squareRoot()) < 1e-4)
    #expect(bn.buffers.map(\.name) == ["bn.running_mean", "bn.running_var"])
  }

  @Test func gruMultiLayerGradients() {
    let (B, T, I, H) = (2, 4, 3, 5)
    var inputs = [randn([B, T, I], seed: 30)]
    for layer in 0..<2 {
      let i = layer == 0 ? I : H
      let s = UInt64(31 + 10 * layer)
      inputs += [
        randn([3 * H, i], seed: s, std: 0.5), randn([3 * H, H], seed: s + 1, std: 0.5),
        randn([3 * H], seed: s + 2, std: 0.5), randn([3 * H], seed: s + 3, std: 0.5),
      ]
    }
    inputs.append(randn([B, H], seed: 60))
    let r = checkGradients(inputs) { v in
      let h1 = gru(
        v[0], weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4], initialState: v[9])
      return gru(h1, weightIH: v[5], weightHH: v[6], biasIH: v[7], biasHH: v[8])
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  @Test func gruForwardMatchesReference() {
    let (B, T, I, H) = (3, 5, 4, 6)
    let x = randn([B, T, I], seed: 70)
    let wih = randn([3 * H, I], seed: 71, std: 0.5)
    let whh = randn([3 * H, H], seed: 72, std: 0.5)
    let bih = randn([3 * H], seed: 73)
    let bhh = randn([3 * H], seed: 74)
    let tape = Tape(recording: false)
    let y = gru(
      tape.constant(x), weightIH: tape.constant(wih), weightHH: tape.constant(whh),
      biasIH: tape.constant(bih), biasHH: tape.constant(bhh)
    ).value
    let ref = referenceGRU(x: x, wih: wih, whh: whh, bih: bih, bhh: bhh)
    #expect(y.shape == [B, T, H])
    let worst = zip(y.storage, ref.storage).map { abs($0 - $1) }.max() ?? 0
    #expect(worst < 1e-5, "max difference \(worst)")
  }

  @Test func gruLayerNamesMatchPyTorch() {
    var rng = SeededRandom(seed: 1)
    let g = GRU(inputSize: 3, hiddenSize: 4, layerCount: 2, name: "decoder.gru", rng: &rng)
    #expect(
      g.parameters.map(\.name) == [
        "decoder.gru.weight_ih_l0", "decoder.gru.weight_hh_l0", "decoder.gru.bias_ih_l0",
        "decoder.gru.bias_hh_l0",
        "decoder.gru.weight_ih_l1", "decoder.gru.weight_hh_l1", "decoder.gru.bias_ih_l1",
        "decoder.gru.bias_hh_l1",
      ])
    #expect(
      g.parameters.map(\.value.shape) == [
        [12, 3], [12, 4], [12], [12], [12, 4], [12, 4], [12], [12],
      ])
  }
}

/// Straightforward GRU from the equations, one scalar at a time (PyTorch's formulation).
func referenceGRU(x: Tensor, wih: Tensor, whh: Tensor, bih: Tensor, bhh: Tensor) -> Tensor {
  let (B, T, I) = (x.shape[0], x.shape[1], x.shape[2])
  let H = whh.shape[1]
  func sig(_ v: Float) -> Float { 1 / (1 + expf(-v)) }
  var out = Tensor(zeros: [B, T, H])
  for b in 0..<B {
    var h = [Float](repeating: 0, count: H)
    for t in 0..<T {
      func proj(_ w: Tensor, _ v: [Float], _ row: Int, _ n: Int) -> Float {
        var s: Float = 0
        for k in 0..<n { s += w.storage[row * n + k] * v[k] }
        return s
      }
      let xt = Array(x.storage[((b * T + t) * I)..<((b * T + t + 1) * I)])
      var hNew = h
      for j in 0..<H {
        let inR: Float = proj(wih, xt, j, I) + bih.storage[j]
        let r = sig(inR + proj(whh, h, j, H) + bhh.storage[j])
        let inZ: Float = proj(wih, xt, H + j, I) + bih.storage[H + j]
        let z = sig(inZ + proj(whh, h, H + j, H) + bhh.storage[H + j])
        let inN: Float = proj(wih, xt, 2 * H + j, I) + bih.storage[2 * H + j]
        let hidN: Float = proj(whh, h, 2 * H + j, H) + bhh.storage[2 * H + j]
        let n = tanhf(inN + r * hidN)
        hNew[j] = (1 - z) * n + z * h[j]
      }
      h = hNew
      for j in 0..<H { out.storage[(b * T + t) * H + j] = h[j] }
    }
  }
  return out
}
