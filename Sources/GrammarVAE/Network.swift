// The VAE network (Kusner et al. 2017, §3 and REFERENCE.md §3) with a fused, hand-written
// forward and backward pass over raw buffers. Matrix products use Engine's BLAS seam;
// parameters are Engine `Parameter`s so optimisers and checkpoints see them by name.
//
// Layouts: encoder activations [batch, length, channels]; decoder sequences time-major
// [steps, batch, features] so each GRU step reads one contiguous block.
import CFG
import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Batch normalisation parameters and running statistics over the last axis.
final class BatchNormState {
  let gamma: Parameter
  let beta: Parameter
  let runningMean: Parameter
  let runningVariance: Parameter
  let features: Int
  static let momentum: Float = 0.01  // weight of the batch statistics (Keras momentum 0.99)
  static let epsilon: Float = 1e-3

  init(name: String, features: Int) {
    self.features = features
    gamma = Parameter(name + ".gamma", Tensor(repeating: 1, shape: [features]))
    beta = Parameter(name + ".beta", Tensor(zeros: [features]))
    runningMean = Parameter(name + ".running_mean", Tensor(zeros: [features]))
    runningVariance = Parameter(name + ".running_var", Tensor(repeating: 1, shape: [features]))
  }

  /// Training forward in place over `x[rows, features]`: saves x̂ into `xhat` and 1/σ into
  /// `invStd`, and updates the running statistics.
  func forwardTraining(_ x: FPtr, rows: Int, xhat: FPtr, invStd: FPtr, updateRunning: Bool) {
    let C = features
    var mean = [Float](zeros: C)
    var variance = [Float](zeros: C)
    for r in 0..<rows { for c in 0..<C { mean[c] += x[r * C + c] } }
    for c in 0..<C { mean[c] /= Float(max(rows, 1)) }
    for r in 0..<rows {
      for c in 0..<C {
        let d = x[r * C + c] - mean[c]
        variance[c] += d * d
      }
    }
    for c in 0..<C { variance[c] /= Float(max(rows, 1)) }
    gamma.withValue { g in
      beta.withValue { b in
        for c in 0..<C { invStd[c] = 1 / (variance[c] + Self.epsilon).squareRoot() }
        for r in 0..<rows {
          for c in 0..<C {
            let h = (x[r * C + c] - mean[c]) * invStd[c]
            xhat[r * C + c] = h
            x[r * C + c] = g[c] * h + b[c]
          }
        }
      }
    }
    if updateRunning {
      let m = Self.momentum
      runningMean.value.storage.withPtr { rm in
        runningVariance.value.storage.withPtr { rv in
          for c in 0..<C {
            rm[c] = (1 - m) * rm[c] + m * mean[c]
            rv[c] = (1 - m) * rv[c] + m * variance[c]
          }
        }
      }
    }
  }

  /// Inference forward in place with the running statistics.
  func forwardInference(_ x: FPtr, rows: Int) {
    let C = features
    gamma.withValue { g in
      beta.withValue { b in
        runningMean.withValue { rm in
          runningVariance.withValue { rv in
            for c in 0..<C {
              let s = g[c] / (rv[c] + Self.epsilon).squareRoot()
              for r in 0..<rows { x[r * C + c] = (x[r * C + c] - rm[c]) * s + b[c] }
            }
          }
        }
      }
    }
  }

  /// Backward in place: `dy[rows, features]` becomes dx; accumulates dγ, dβ.
  func backward(_ dy: FPtr, rows: Int, xhat: CFPtr, invStd: CFPtr) {
    let C = features
    var sumDy = [Float](zeros: C)
    var sumDyX = [Float](zeros: C)
    for r in 0..<rows {
      for c in 0..<C {
        sumDy[c] += dy[r * C + c]
        sumDyX[c] += dy[r * C + c] * xhat[r * C + c]
      }
    }
    gamma.withGradient { dg in
      beta.withGradient { db in
        for c in 0..<C {
          dg[c] += sumDyX[c]
          db[c] += sumDy[c]
        }
      }
    }
    let n = Float(max(rows, 1))
    gamma.withValue { g in
      for r in 0..<rows {
        for c in 0..<C {
          let i = r * C + c
          dy[i] = g[c] * invStd[c] / n * (n * dy[i] - sumDy[c] - xhat[i] * sumDyX[c])
        }
      }
    }
  }
}

/// How the reconstruction loss masks the softmax at each step.
public enum LossMask: Sendable {
  /// Plain softmax over the whole vocabulary (character VAE).
  case none
  /// Grammar masks, teacher-forced: for target production y, the allowed set is every usable
  /// production with y's left-hand side (`allowed[y]`).
  case grammar(allowed: [[Int32]])

  public init(grammar g: Grammar) {
    let lhs = g.lhsIndexOfProduction
    let P = g.productions.count
    var allowed: [[Int32]] = []
    for y in 0..<P {
      allowed.append((0..<P).filter { lhs[$0] == lhs[y] && g.isUsable($0) }.map { Int32($0) })
    }
    self = .grammar(allowed: allowed)
  }
}

/// One micro-batch for a training step.
public struct TrainingBatch {
  /// `[rows, steps]` target indices (the encoder reads all `steps`).
  public var sequences: [Int32]
  public var rows: Int
  /// Decoder steps to run: the longest true length in the batch (grammar) or all steps.
  public var decoderSteps: Int
}

/// Loss terms of one step, summed over the batch rows (divide by rows for means).
public struct LossTerms: Sendable, Equatable {
  public var reconstruction: Double = 0
  public var kl: Double = 0
  public var rows: Int = 0
}

/// The VAE: encoder q(z|x) and decoder p(x|z), parameters and fused passes.
public final class VAENetwork: @unchecked Sendable {
  public let configuration: ModelConfiguration
  let convWeights: [Parameter]  // [kernel·inChannels, filters]
  let convBiases: [Parameter]
  let convNorms: [BatchNormState]
  let encoderWeight: Parameter  // [convOut·filters, encoderHidden]
  let encoderBias: Parameter
  let meanWeight: Parameter  // [encoderHidden, latent]
  let meanBias: Parameter
  let logVarWeight: Parameter
  let logVarBias: Parameter
  let latentNorm: BatchNormState?
  let decoderWeight: Parameter  // [latent, decoderHidden]
  let decoderBias: Parameter
  let gruInputWeights: [Parameter]  // [in, 3H], gates r z n
  let gruHiddenWeights: [Parameter]  // [H, 3H]
  let gruInputBiases: [Parameter]
  let gruHiddenBiases: [Parameter]
  let outputWeight: Parameter  // [H, vocabulary]
  let outputBias: Parameter

  /// Trainable parameters in a fixed order (optimiser state follows it).
  public let parameters: [Parameter]
  /// Non-trainable state saved with the model (batch-norm running statistics).
  public let buffers: [Parameter]

  /// A freshly initialised network (Glorot-uniform weights, zero biases).
  public init(configuration c: ModelConfiguration, seed: UInt64) {
    configuration = c
    var rng = SplitMix64(seed: seed)
    func glorot(_ name: String, _ fanIn: Int, _ fanOut: Int, shape: [Int]? = nil) -> Parameter {
      let limit = (6 / Float(fanIn + fanOut)).squareRoot()
      let n = fanIn * fanOut
      var v = [Float](zeros: n)
      for i in 0..<n { v[i] = (Float(rng.next() >> 40) * 0x1p-24 * 2 - 1) * limit }
      return Parameter(name, Tensor(shape: shape ?? [fanIn, fanOut], storage: v))
    }
    func uniform(_ name: String, _ rows: Int, _ cols: Int, limit: Float) -> Parameter {
      var v = [Float](zeros: rows * cols)
      for i in v.indices { v[i] = (Float(rng.next() >> 40) * 0x1p-24 * 2 - 1) * limit }
      return Parameter(name, Tensor(shape: [rows, cols], storage: v))
    }
    func zeros(_ name: String, _ n: Int) -> Parameter { Parameter(name, Tensor(zeros: [n])) }
    var cw: [Parameter] = []
    var cb: [Parameter] = []
    var cn: [BatchNormState] = []
    var channels = c.vocabularySize
    for (i, spec) in c.convolutions.enumerated() {
      cw.append(glorot("encoder.conv\(i).weight", spec.kernel * channels, spec.filters))
      cb.append(zeros("encoder.conv\(i).bias", spec.filters))
      if c.convolutionBatchNorm {
        cn.append(BatchNormState(name: "encoder.conv\(i).norm", features: spec.filters))
      }
      channels = spec.filters
    }
    convWeights = cw
    convBiases = cb
    convNorms = cn
    let flat = c.convolutionOutputLength * channels
    encoderWeight = glorot("encoder.dense.weight", flat, c.encoderHidden)
    encoderBias = zeros("encoder.dense.bias", c.encoderHidden)
    meanWeight = glorot("encoder.mean.weight", c.encoderHidden, c.latentSize)
    meanBias = zeros("encoder.mean.bias", c.latentSize)
    logVarWeight = glorot("encoder.log_var.weight", c.encoderHidden, c.latentSize)
    logVarBias = zeros("encoder.log_var.bias", c.latentSize)
    latentNorm =
      c.latentBatchNorm ? BatchNormState(name: "decoder.latent_norm", features: c.latentSize) : nil
    decoderWeight = glorot("decoder.dense.weight", c.latentSize, c.decoderHidden)
    decoderBias = zeros("decoder.dense.bias", c.decoderHidden)
    var wi: [Parameter] = []
    var wh: [Parameter] = []
    var bi: [Parameter] = []
    var bh: [Parameter] = []
    let H = c.gruHidden
    let limit = 1 / Float(H).squareRoot()
    for l in 0..<c.gruLayers {
      let input = l == 0 ? c.decoderHidden : H
      wi.append(uniform("decoder.gru\(l).weight_ih", input, 3 * H, limit: limit))
      wh.append(uniform("decoder.gru\(l).weight_hh", H, 3 * H, limit: limit))
      bi.append(zeros("decoder.gru\(l).bias_ih", 3 * H))
      bh.append(zeros("decoder.gru\(l).bias_hh", 3 * H))
    }
    gruInputWeights = wi
    gruHiddenWeights = wh
    gruInputBiases = bi
    gruHiddenBiases = bh
    outputWeight = glorot("decoder.output.weight", H, c.vocabularySize)
    outputBias = zeros("decoder.output.bias", c.vocabularySize)

    var ps: [Parameter] = []
    var bs: [Parameter] = []
    for i in cw.indices {
      ps += [cw[i], cb[i]]
      if c.convolutionBatchNorm {
        ps += [cn[i].gamma, cn[i].beta]
        bs += [cn[i].runningMean, cn[i].runningVariance]
      }
    }
    ps += [encoderWeight, encoderBias, meanWeight, meanBias, logVarWeight, logVarBias]
    if let n = latentNorm {
      ps += [n.gamma, n.beta]
      bs += [n.runningMean, n.runningVariance]
    }
    ps += [decoderWeight, decoderBias]
    for l in 0..<c.gruLayers { ps += [wi[l], wh[l], bi[l], bh[l]] }
    ps += [outputWeight, outputBias]
    parameters = ps
    buffers = bs
  }

  /// Every saved tensor (parameters, then buffers).
  public var allTensors: [Parameter] { parameters + buffers }

  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

  public func zeroGradients() { for p in parameters { p.zeroGradient() } }

  // MARK: Encoder

  /// Encoder activations kept for the backward pass.
  struct EncoderTape {
    var inputs: [[Float]] = []  // per conv: its input as im2col rows [B·Lo, K·C]
    var outputs: [[Float]] = []  // per conv: post-ReLU output [B, Lo, F] (before norm)
    var xhat: [[Float]] = []
    var invStd: [[Float]] = []
    var flat: [Float] = []  // [B, flat]
    var hidden: [Float] = []  // [B, encoderHidden]
    var mean: [Float] = []  // [B, Z]
    var logVar: [Float] = []  // [B, Z]
  }

  /// Sliding windows of `x[rows, length, channels]` as rows `[rows·Lo, kernel·channels]`
  /// (each window is contiguous in this layout, so a row is one copy).
  func im2col(_ x: [Float], rows B: Int, length L: Int, channels C: Int, kernel K: Int) -> [Float] {
    let Lo = L - K + 1
    let w = K * C
    var cols = [Float](zeros: B * Lo * w)
    x.withCPtr { xp in
      cols.withPtr { cp in
        for b in 0..<B {
          for t in 0..<Lo { (cp + (b * Lo + t) * w).update(from: xp + (b * L + t) * C, count: w) }
        }
      }
    }
    return cols
  }

  /// One-hot `[rows, steps, vocabulary]` of index sequences.
  func oneHot(_ sequences: [Int32], rows: Int) -> [Float] {
    let T = configuration.steps
    let V = configuration.vocabularySize
    var x = [Float](zeros: rows * T * V)
    x.withPtr { p in
      sequences.withUnsafeBufferPointer { s in
        for i in 0..<(rows * T) { p[i * V + Int(s[i])] = 1 }
      }
    }
    return x
  }

  /// Encoder forward: μ and log σ² for `rows` sequences; `training` uses batch statistics.
  func encode(
    oneHot x0: [Float], rows B: Int, training: Bool, tape: inout EncoderTape?,
    updateRunning: Bool = true
  ) -> (mean: [Float], logVar: [Float]) {
    let c = configuration
    var x = x0
    var L = c.steps
    var C = c.vocabularySize
    for (i, spec) in c.convolutions.enumerated() {
      let K = spec.kernel
      let F = spec.filters
      let Lo = L - K + 1
      var y = [Float](zeros: B * Lo * F)
      let cols = im2col(x, rows: B, length: L, channels: C, kernel: K)  // [B·Lo, K·C]
      cols.withCPtr { cp in
        y.withPtr { yp in
          convWeights[i].withValue { w in gemm(cp, w, yp, m: B * Lo, n: F, k: K * C) }
          convBiases[i].withValue { bias in addBias(yp, bias, rows: B * Lo, n: F) }
          reluInPlace(yp, count: B * Lo * F)
        }
      }
      if tape != nil {
        tape!.inputs.append(cols)
        tape!.outputs.append(y)
      }
      if c.convolutionBatchNorm {
        if training {
          var xhat = [Float](zeros: B * Lo * F)
          var inv = [Float](zeros: F)
          y.withPtr { yp in
            xhat.withPtr { xh in
              inv.withPtr { ip in
                convNorms[i].forwardTraining(
                  yp, rows: B * Lo, xhat: xh, invStd: ip, updateRunning: updateRunning)
              }
            }
          }
          if tape != nil {
            tape!.xhat.append(xhat)
            tape!.invStd.append(inv)
          }
        } else {
          y.withPtr { convNorms[i].forwardInference($0, rows: B * Lo) }
        }
      }
      x = y
      L = Lo
      C = F
    }
    let flatN = L * C
    let Hd = c.encoderHidden
    let Z = c.latentSize
    var h = [Float](zeros: B * Hd)
    var mu = [Float](zeros: B * Z)
    var lv = [Float](zeros: B * Z)
    x.withCPtr { xp in
      h.withPtr { hp in
        encoderWeight.withValue { w in gemm(xp, w, hp, m: B, n: Hd, k: flatN) }
        encoderBias.withValue { addBias(hp, $0, rows: B, n: Hd) }
        reluInPlace(hp, count: B * Hd)
        mu.withPtr { mp in
          meanWeight.withValue { gemm(hp, $0, mp, m: B, n: Z, k: Hd) }
          meanBias.withValue { addBias(mp, $0, rows: B, n: Z) }
        }
        lv.withPtr { lp in
          logVarWeight.withValue { gemm(hp, $0, lp, m: B, n: Z, k: Hd) }
          logVarBias.withValue { addBias(lp, $0, rows: B, n: Z) }
        }
      }
    }
    if tape != nil {
      tape!.flat = x
      tape!.hidden = h
      tape!.mean = mu
      tape!.logVar = lv
    }
    return (mu, lv)
  }

  // MARK: Decoder

  /// Decoder activations kept for the backward pass.
  struct DecoderTape {
    var zIn: [Float] = []  // decoder dense input [B, Z] (after latent norm)
    var zXhat: [Float] = []
    var zInvStd: [Float] = []
    var dense: [Float] = []  // [B, D] post-ReLU
    var hs: [[Float]] = []  // per layer [(T+1), B, H], row 0 = initial zeros
    var gates: [[Float]] = []  // per layer [T, B, 4H]: r, z, n, hn
  }

  /// The decoder's first layers: latent (normed) → dense ReLU. `z` is modified by the norm.
  func decoderInput(
    _ z: [Float], rows B: Int, training: Bool, tape: inout DecoderTape?, updateRunning: Bool = true
  ) -> [Float] {
    let c = configuration
    var zz = z
    if let norm = latentNorm {
      if training {
        var xhat = [Float](zeros: B * c.latentSize)
        var inv = [Float](zeros: c.latentSize)
        zz.withPtr { zp in
          xhat.withPtr { xh in
            inv.withPtr { ip in
              norm.forwardTraining(zp, rows: B, xhat: xh, invStd: ip, updateRunning: updateRunning)
            }
          }
        }
        if tape != nil {
          tape!.zXhat = xhat
          tape!.zInvStd = inv
        }
      } else {
        zz.withPtr { norm.forwardInference($0, rows: B) }
      }
    }
    let D = c.decoderHidden
    var d = [Float](zeros: B * D)
    zz.withCPtr { zp in
      d.withPtr { dp in
        decoderWeight.withValue { gemm(zp, $0, dp, m: B, n: D, k: c.latentSize) }
        decoderBias.withValue { addBias(dp, $0, rows: B, n: D) }
        reluInPlace(dp, count: B * D)
      }
    }
    if tape != nil {
      tape!.zIn = zz
      tape!.dense = d
    }
    return d
  }

  /// Runs one GRU step for `B` rows: `xp[B, 3H]` input projection (bias included),
  /// `hPrev[B, H]` → `hOut[B, H]`; `hproj[B, 3H]` scratch; `gates[B, 4H]` saves r, z, n, hn.
  @inline(__always)
  func gruStep(
    layer l: Int, B: Int, xp: CFPtr, xpStride: Int, hPrev: CFPtr, hOut: FPtr, hproj: FPtr,
    gates: FPtr?
  ) {
    let H = configuration.gruHidden
    gruHiddenWeights[l].withValue { gemm(hPrev, $0, hproj, m: B, n: 3 * H, k: H) }
    gruHiddenBiases[l].withValue { bh in
      for b in 0..<B {
        let x = xp + b * xpStride
        let hp = hproj + b * 3 * H
        let prev = hPrev + b * H
        let out = hOut + b * H
        for j in 0..<H {
          let r = sigmoid(x[j] + hp[j] + bh[j])
          let u = sigmoid(x[H + j] + hp[H + j] + bh[H + j])
          let hn = hp[2 * H + j] + bh[2 * H + j]
          let n = fastTanh(x[2 * H + j] + r * hn)
          out[j] = (1 - u) * n + u * prev[j]
          if let g = gates {
            let gb = g + b * 4 * H
            gb[j] = r
            gb[H + j] = u
            gb[2 * H + j] = n
            gb[3 * H + j] = hn
          }
        }
      }
    }
  }

  /// Decoder forward over `T` steps for training: logits `[T, B, V]`.
  func decodeTraining(dense d: [Float], rows B: Int, steps T: Int, tape: inout DecoderTape)
    -> [Float]
  {
    let c = configuration
    let H = c.gruHidden
    let V = c.vocabularySize
    var input = d  // layer 0: [B, D] constant over steps; later layers: [T, B, H]
    var inputWidth = c.decoderHidden
    for l in 0..<c.gruLayers {
      var hs = [Float](zeros: (T + 1) * B * H)
      var gates = [Float](zeros: T * B * 4 * H)
      let constantInput = l == 0
      let projRows = constantInput ? B : T * B
      var xp = [Float](zeros: projRows * 3 * H)
      input.withCPtr { ip in
        xp.withPtr { xpp in
          gruInputWeights[l].withValue { gemm(ip, $0, xpp, m: projRows, n: 3 * H, k: inputWidth) }
          gruInputBiases[l].withValue { addBias(xpp, $0, rows: projRows, n: 3 * H) }
        }
      }
      var hproj = [Float](zeros: B * 3 * H)
      xp.withCPtr { xpp in
        hs.withPtr { hp in
          gates.withPtr { gp in
            hproj.withPtr { pp in
              for t in 0..<T {
                gruStep(
                  layer: l, B: B, xp: constantInput ? xpp : xpp + t * B * 3 * H, xpStride: 3 * H,
                  hPrev: hp + t * B * H, hOut: hp + (t + 1) * B * H, hproj: pp,
                  gates: gp + t * B * 4 * H)
              }
            }
          }
        }
      }
      tape.hs.append(hs)
      tape.gates.append(gates)
      input = Array(hs[(B * H)...])
      inputWidth = H
    }
    var logits = [Float](zeros: T * B * V)
    input.withCPtr { ip in
      logits.withPtr { lp in
        outputWeight.withValue { gemm(ip, $0, lp, m: T * B, n: V, k: H) }
        outputBias.withValue { addBias(lp, $0, rows: T * B, n: V) }
      }
    }
    return logits
  }

  // MARK: Training step

  /// Forward and backward for one micro-batch; gradients are accumulated scaled by
  /// `1 / batchRows` (the full batch the micro-batch belongs to).
  ///
  /// ```
  /// loss = mean_b [ Σ_t −log softmax_masked(logits_bt)[y_bt] + klWeight · KL_b ]
  /// KL_b = −½ Σ_j (1 + log σ²_j − μ_j² − σ²_j)     (÷ Z when klAveraged)
  /// ```
  /// Steps past `decoderSteps` are not run: for grammar models every such step has the forced
  /// padding production (one allowed entry), whose masked cross-entropy and gradient are 0.
  public func trainStep<R: RandomNumberGenerator>(
    _ batch: TrainingBatch, batchRows: Int, mask: LossMask, klWeight: Float, rng: inout R,
    updateRunning: Bool = true, computeGradients: Bool = true
  ) -> LossTerms {
    let c = configuration
    let B = batch.rows
    let T = batch.decoderSteps
    let Z = c.latentSize
    let V = c.vocabularySize
    let H = c.gruHidden
    let scale = 1 / Float(batchRows)

    // Encoder.
    var etape: EncoderTape? = EncoderTape()
    let x0 = oneHot(batch.sequences, rows: B)
    let (mu, lv) = encode(
      oneHot: x0, rows: B, training: true, tape: &etape, updateRunning: updateRunning)
    var eps = [Float](zeros: B * Z)
    eps.withPtr { NormalSampler.fill($0, count: B * Z, rng: &rng) }
    var z = [Float](zeros: B * Z)
    for i in 0..<(B * Z) { z[i] = mu[i] + c.epsilonStd * eps[i] * expf(0.5 * lv[i]) }

    // KL.
    var terms = LossTerms()
    terms.rows = B
    let klDiv: Float = c.klAveraged ? Float(Z) : 1
    var klSum: Double = 0
    for i in 0..<(B * Z) { klSum += Double(-0.5 * (1 + lv[i] - mu[i] * mu[i] - expf(lv[i]))) }
    terms.kl = klSum / Double(klDiv)

    // Decoder.
    var dtapeOpt: DecoderTape? = DecoderTape()
    let d = decoderInput(z, rows: B, training: true, tape: &dtapeOpt, updateRunning: updateRunning)
    var dtape = dtapeOpt!
    var logits = decodeTraining(dense: d, rows: B, steps: T, tape: &dtape)

    // Masked cross-entropy; logits become dlogits.
    var recon: Double = 0
    let seqT = c.steps
    var scratchArray = [Float](zeros: V)
    scratchArray.withPtr { scratch in
      logits.withPtr { lp in
        batch.sequences.withUnsafeBufferPointer { seq in
          for t in 0..<T {
            for b in 0..<B {
              let y = Int(seq[b * seqT + t])
              let row = lp + (t * B + b) * V
              switch mask {
              case .none:
                var m = -Float.infinity
                for p in 0..<V { m = max(m, row[p]) }
                var s: Float = 0
                for p in 0..<V {
                  let e = expf(row[p] - m)
                  row[p] = e
                  s += e
                }
                recon -= Double(logf(row[y] / s))
                let inv = 1 / s
                for p in 0..<V { row[p] = row[p] * inv * scale }
                row[y] -= scale
              case .grammar(let allowed):
                let a = allowed[y]
                if a.count <= 1 {
                  for p in 0..<V { row[p] = 0 }
                  continue
                }
                var m = -Float.infinity
                for p in a { m = max(m, row[Int(p)]) }
                var s: Float = 0
                for p in a { s += expf(row[Int(p)] - m) }
                recon -= Double(row[y] - m - logf(s))
                // Gradient: softmax over the allowed set minus the target, zero elsewhere.
                let inv = 1 / s
                for (k, p) in a.enumerated() { scratch[k] = expf(row[Int(p)] - m) * inv * scale }
                for p in 0..<V { row[p] = 0 }
                for (k, p) in a.enumerated() { row[Int(p)] = scratch[k] }
                row[y] -= scale
              }
            }
          }
        }
      }
    }
    terms.reconstruction = recon
    if !computeGradients { return terms }

    // Output layer backward.
    let top = dtape.hs[c.gruLayers - 1]
    var dH = [Float](zeros: T * B * H)  // gradient w.r.t. the top layer's outputs [T, B, H]
    top.withCPtr { hp in
      logits.withCPtr { gl in
        let hout = hp + B * H
        outputWeight.withGradient {
          gemm(hout, gl, $0, m: H, n: V, k: T * B, transposeA: true, beta: 1)
        }
        outputBias.withGradient { addColumnSums(gl, into: $0, rows: T * B, n: V) }
        dH.withPtr { dp in
          outputWeight.withValue { gemm(gl, $0, dp, m: T * B, n: H, k: V, transposeB: true) }
        }
      }
    }

    // GRU layers, top down (backpropagation through time).
    var dDense = [Float](zeros: B * c.decoderHidden)
    for l in stride(from: c.gruLayers - 1, through: 0, by: -1) {
      let hs = dtape.hs[l]
      let gates = dtape.gates[l]
      var dXproj = [Float](zeros: T * B * 3 * H)  // [T, B, 3H]
      var dHproj = [Float](zeros: B * 3 * H)
      var dh = [Float](zeros: B * H)  // carried gradient w.r.t. h_t
      hs.withCPtr { hp in
        gates.withCPtr { gp in
          dXproj.withPtr { dxp in
            dHproj.withPtr { dhp in
              dh.withPtr { dhc in
                dH.withCPtr { dHin in
                  gruHiddenWeights[l].withValue { whh in
                    gruHiddenWeights[l].withGradient { dwhh in
                      gruHiddenBiases[l].withGradient { dbhh in
                        for t in stride(from: T - 1, through: 0, by: -1) {
                          let g = gp + t * B * 4 * H
                          let hPrev = hp + t * B * H
                          let dx = dxp + t * B * 3 * H
                          for b in 0..<B {
                            let gb = g + b * 4 * H
                            let hb = hPrev + b * H
                            let dhb = dhc + b * H
                            let din = dHin + (t * B + b) * H
                            let dxb = dx + b * 3 * H
                            let dpb = dhp + b * 3 * H
                            for j in 0..<H {
                              let dht = dhb[j] + din[j]
                              let r = gb[j]
                              let u = gb[H + j]
                              let n = gb[2 * H + j]
                              let hn = gb[3 * H + j]
                              let dn = dht * (1 - u)
                              let du = dht * (hb[j] - n)
                              let dan = dn * (1 - n * n)
                              let dr = dan * hn
                              let dar = dr * r * (1 - r)
                              let dau = du * u * (1 - u)
                              dxb[j] = dar
                              dxb[H + j] = dau
                              dxb[2 * H + j] = dan
                              dpb[j] = dar
                              dpb[H + j] = dau
                              dpb[2 * H + j] = dan * r
                              dhb[j] = dht * u
                            }
                          }
                          // dh_{t-1} += dHproj · Whhᵀ; dWhh += h_{t-1}ᵀ · dHproj.
                          gemm(dhp, whh, dhc, m: B, n: H, k: 3 * H, transposeB: true, beta: 1)
                          gemm(hPrev, dhp, dwhh, m: H, n: 3 * H, k: B, transposeA: true, beta: 1)
                          addColumnSums(dhp, into: dbhh, rows: B, n: 3 * H)
                        }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
      gruInputBiases[l].withGradient { db in
        dXproj.withCPtr { addColumnSums($0, into: db, rows: T * B, n: 3 * H) }
      }
      if l == 0 {
        // Constant input over steps: sum the projections' gradients over time.
        var dSum = [Float](zeros: B * 3 * H)
        for t in 0..<T {
          let o = t * B * 3 * H
          for i in 0..<(B * 3 * H) { dSum[i] += dXproj[o + i] }
        }
        let D = c.decoderHidden
        dtape.dense.withCPtr { dp in
          dSum.withCPtr { sp in
            gruInputWeights[0].withGradient {
              gemm(dp, sp, $0, m: D, n: 3 * H, k: B, transposeA: true, beta: 1)
            }
            dDense.withPtr { dd in
              gruInputWeights[0].withValue {
                gemm(sp, $0, dd, m: B, n: D, k: 3 * H, transposeB: true)
              }
            }
          }
        }
      } else {
        let below = dtape.hs[l - 1]
        var dBelow = [Float](zeros: T * B * H)
        below.withCPtr { bp in
          dXproj.withCPtr { xp in
            gruInputWeights[l].withGradient {
              gemm(bp + B * H, xp, $0, m: H, n: 3 * H, k: T * B, transposeA: true, beta: 1)
            }
            dBelow.withPtr { dbp in
              gruInputWeights[l].withValue {
                gemm(xp, $0, dbp, m: T * B, n: H, k: 3 * H, transposeB: true)
              }
            }
          }
        }
        dH = dBelow
      }
    }

    // Decoder dense and latent norm.
    let D = c.decoderHidden
    var dz = [Float](zeros: B * Z)
    dDense.withPtr { dd in
      dtape.dense.withCPtr { reluBackward(dd, output: $0, count: B * D) }
      dtape.zIn.withCPtr { zp in
        decoderWeight.withGradient { gemm(zp, dd, $0, m: Z, n: D, k: B, transposeA: true, beta: 1) }
      }
      decoderBias.withGradient { addColumnSums(dd, into: $0, rows: B, n: D) }
      dz.withPtr { dzp in
        decoderWeight.withValue { gemm(dd, $0, dzp, m: B, n: Z, k: D, transposeB: true) }
      }
    }
    if let norm = latentNorm {
      dz.withPtr { dzp in
        dtape.zXhat.withCPtr { xh in
          dtape.zInvStd.withCPtr { iv in
            norm.backward(dzp, rows: B, xhat: xh, invStd: iv)
          }
        }
      }
    }

    // Reparameterisation and KL.
    var dmu = [Float](zeros: B * Z)
    var dlv = [Float](zeros: B * Z)
    let klScale = klWeight * scale / klDiv
    for i in 0..<(B * Z) {
      let s = expf(0.5 * lv[i])
      // dz already carries the 1/batchRows scale from the logits' gradient.
      dmu[i] = dz[i] + klScale * mu[i]
      dlv[i] = dz[i] * c.epsilonStd * eps[i] * s * 0.5 + klScale * 0.5 * (expf(lv[i]) - 1)
    }

    // Encoder dense layers.
    let et = etape!
    let Hd = c.encoderHidden
    var dh = [Float](zeros: B * Hd)
    et.hidden.withCPtr { hp in
      dh.withPtr { dhp in
        dmu.withCPtr { dm in
          meanWeight.withGradient { gemm(hp, dm, $0, m: Hd, n: Z, k: B, transposeA: true, beta: 1) }
          meanBias.withGradient { addColumnSums(dm, into: $0, rows: B, n: Z) }
          meanWeight.withValue { gemm(dm, $0, dhp, m: B, n: Hd, k: Z, transposeB: true) }
        }
        dlv.withCPtr { dl in
          logVarWeight.withGradient {
            gemm(hp, dl, $0, m: Hd, n: Z, k: B, transposeA: true, beta: 1)
          }
          logVarBias.withGradient { addColumnSums(dl, into: $0, rows: B, n: Z) }
          logVarWeight.withValue { gemm(dl, $0, dhp, m: B, n: Hd, k: Z, transposeB: true, beta: 1) }
        }
        reluBackward(dhp, output: hp, count: B * Hd)
      }
    }
    let flatN = et.flat.count / max(B, 1)
    var dflat = [Float](zeros: B * flatN)
    et.flat.withCPtr { fp in
      dh.withCPtr { dhp in
        encoderWeight.withGradient {
          gemm(fp, dhp, $0, m: flatN, n: Hd, k: B, transposeA: true, beta: 1)
        }
        encoderBias.withGradient { addColumnSums(dhp, into: $0, rows: B, n: Hd) }
        dflat.withPtr { dfp in
          encoderWeight.withValue { gemm(dhp, $0, dfp, m: B, n: flatN, k: Hd, transposeB: true) }
        }
      }
    }

    // Convolutions, last to first.
    var dy = dflat
    for i in stride(from: c.convolutions.count - 1, through: 0, by: -1) {
      let spec = c.convolutions[i]
      let K = spec.kernel
      let F = spec.filters
      let cols = et.inputs[i]
      let C = i == 0 ? V : c.convolutions[i - 1].filters
      let Lo = cols.count / max(B * K * C, 1)
      let L = Lo + K - 1
      if c.convolutionBatchNorm {
        dy.withPtr { dyp in
          et.xhat[i].withCPtr { xh in
            et.invStd[i].withCPtr { iv in
              convNorms[i].backward(dyp, rows: B * Lo, xhat: xh, invStd: iv)
            }
          }
        }
      }
      dy.withPtr { dyp in
        et.outputs[i].withCPtr { reluBackward(dyp, output: $0, count: B * Lo * F) }
      }
      var dx = i > 0 ? [Float](zeros: B * L * C) : []
      cols.withCPtr { cp in
        dy.withCPtr { dyp in
          convWeights[i].withGradient {
            gemm(cp, dyp, $0, m: K * C, n: F, k: B * Lo, transposeA: true, beta: 1)
          }
          convBiases[i].withGradient { addColumnSums(dyp, into: $0, rows: B * Lo, n: F) }
          if i > 0 {
            var dcols = [Float](zeros: B * Lo * K * C)
            dx.withPtr { dxp in
              dcols.withPtr { dc in
                convWeights[i].withValue { w in
                  gemm(dyp, w, dc, m: B * Lo, n: K * C, k: F, transposeB: true)
                  // col2im: overlapping windows add up.
                  for b in 0..<B {
                    let base = dxp + b * L * C
                    for t in 0..<Lo {
                      let src = dc + (b * Lo + t) * K * C
                      let dst = base + t * C
                      for j in 0..<(K * C) { dst[j] += src[j] }
                    }
                  }
                }
              }
            }
          }
        }
      }
      dy = dx
    }
    return terms
  }
}
