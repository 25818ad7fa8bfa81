import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One GRU layer over a whole sequence, fused into a single custom op with a hand-written
/// backward through time. PyTorch's equations, gate order (r, z, n) and parameter layout:
///
/// ```
/// r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)
/// z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)
/// n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))
/// h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}
/// ```
///
/// Shapes: `x` [B, T, in], `weightIH` [3H, in], `weightHH` [3H, H], `biasIH`/`biasHH` [3H],
/// `initialState` [B, H] (zeros when nil); result [B, T, H], the hidden state at every step.
///
/// Cost: the input projections of all steps are one GEMM ([B·T, in]·[in, 3H]); each step is
/// one [B, H]·[H, 3H] GEMM plus gate math. The backward accumulates `dh` per step with one
/// GEMM (β = 1) and forms the weight gradients with one GEMM each over all steps.
public func gru(
  _ x: Var, weightIH: Var, weightHH: Var, biasIH: Var, biasHH: Var, initialState: Var? = nil
) -> Var {
  let xs = x.shape
  precondition(xs.count == 3, "gru input must be [B, T, in], got \(xs)")
  let (B, T, I) = (xs[0], xs[1], xs[2])
  let H = weightHH.shape[1]
  let G = 3 * H
  precondition(weightIH.shape == [G, I], "gru weight_ih \(weightIH.shape), want \([G, I])")
  precondition(weightHH.shape == [G, H], "gru weight_hh \(weightHH.shape), want \([G, H])")
  precondition(
    biasIH.shape == [G] && biasHH.shape == [G], "gru biases \(biasIH.shape), \(biasHH.shape)")
  if let h0 = initialState { precondition(h0.shape == [B, H], "gru initial state \(h0.shape)") }

  let tape = x.tape
  let inputs = [x, weightIH, weightHH, biasIH, biasHH] + (initialState.map { [$0] } ?? [])
  let recording = inputs.contains { tape.needsGradient($0) }
  let BH = B * H
  // Saved for backward, time-major: hidden states [T+1, B, H] (h_0 first) and the gates
  // r, z, n and W_hn h + b_hn, each [T, B, H].
  var hs = [Float](repeating: 0, count: (T + 1) * BH)
  var gates = [Float](repeating: 0, count: recording ? 4 * T * BH : 0)
  var y = Tensor(zeros: [B, T, H])
  var gi = [Float](repeating: 0, count: B * T * G)  // [B, T, 3H] input projections
  var gh = [Float](repeating: 0, count: B * G)  // [B, 3H] recurrent projection of one step

  x.value.withPointer { px in
    weightIH.value.withPointer { pwi in
      weightHH.value.withPointer { pwh in
        biasIH.value.withPointer { pbi in
          biasHH.value.withPointer { pbh in
            gi.withUnsafeMutableBufferPointer { giBuf in
              let pgi = giBuf.baseAddress!
              for r in 0..<(B * T) { (pgi + r * G).update(from: pbi, count: G) }
              gemm(false, true, m: B * T, n: G, k: I, px, lda: I, pwi, ldb: I, beta: 1, pgi, ldc: G)
              hs.withUnsafeMutableBufferPointer { hsBuf in
                let phs = hsBuf.baseAddress!
                if let h0 = initialState {
                  h0.value.withPointer { phs.update(from: $0, count: BH) }
                }
                gh.withUnsafeMutableBufferPointer { ghBuf in
                  let pgh = ghBuf.baseAddress!
                  gates.withUnsafeMutableBufferPointer { gBuf in
                    y.withMutablePointer { py in
                      for t in 0..<T {
                        let hPrev = phs + t * BH
                        let hNext = phs + (t + 1) * BH
                        gemm(
                          false, true, m: B, n: G, k: H, hPrev, lda: H, pwh, ldb: H, beta: 0, pgh,
                          ldc: G)
                        let saved = recording ? gBuf.baseAddress! + t * BH : nil
                        for b in 0..<B {
                          gruCellForward(
                            gi: pgi + (b * T + t) * G, gh: pgh + b * G, biasHH: pbh,
                            hPrev: hPrev + b * H, hNext: hNext + b * H, H: H,
                            saved: saved.map { $0 + b * H }, gateStride: T * BH)
                          (py + (b * T + t) * H).update(from: hNext + b * H, count: H)
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
    }
  }
  guard recording else { return tape.constant(y) }
  let op = GRUBackward(
    B: B, T: T, I: I, H: H, hs: hs, gates: gates,
    inputNeedsGradient: tape.needsGradient(x),
    stateNeedsGradient: initialState.map { tape.needsGradient($0) } ?? false)
  return tape.record(y, inputs: inputs, backward: op)
}

/// Gate math of one row: pre-activations from `gi` (x·W_ihᵀ + b_ih) and `gh` (h·W_hhᵀ),
/// new state into `hNext`; r, z, n, W_hn h + b_hn into `saved` at strides of `gateStride`.
@inline(__always)
func gruCellForward(
  gi: UnsafePointer<Float>, gh: UnsafeMutablePointer<Float>, biasHH: UnsafePointer<Float>,
  hPrev: UnsafePointer<Float>, hNext: UnsafeMutablePointer<Float>, H: Int,
  saved: UnsafeMutablePointer<Float>?, gateStride: Int
) {
  // r and z pre-activations in place in gh, then the sigmoid over 2H contiguous values.
  for j in 0..<(2 * H) { gh[j] += gi[j] + biasHH[j] }
  vectorSigmoid(gh, count: 2 * H)
  let n = gh + 2 * H
  let gin = gi + 2 * H
  let bhn = biasHH + 2 * H
  if let saved {
    for j in 0..<H {
      let ghn = n[j] + bhn[j]
      saved[3 * gateStride + j] = ghn
      n[j] = gin[j] + gh[j] * ghn
    }
  } else {
    for j in 0..<H { n[j] = gin[j] + gh[j] * (n[j] + bhn[j]) }
  }
  vectorTanh(n, count: H)
  let z = gh + H
  for j in 0..<H { hNext[j] = n[j] + z[j] * (hPrev[j] - n[j]) }
  if let saved {
    (saved).update(from: gh, count: H)  // r
    (saved + gateStride).update(from: z, count: H)
    (saved + 2 * gateStride).update(from: n, count: H)
  }
}

final class GRUBackward: CustomBackward {
  let B, T, I, H: Int
  let hs: [Float]  // [T+1, B, H]
  let gates: [Float]  // r, z, n, ghn: each [T, B, H]
  let inputNeedsGradient, stateNeedsGradient: Bool

  init(
    B: Int, T: Int, I: Int, H: Int, hs: [Float], gates: [Float], inputNeedsGradient: Bool,
    stateNeedsGradient: Bool
  ) {
    self.B = B
    self.T = T
    self.I = I
    self.H = H
    self.hs = hs
    self.gates = gates
    self.inputNeedsGradient = inputNeedsGradient
    self.stateNeedsGradient = stateNeedsGradient
  }

  func backward(outputGradient dy: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let G = 3 * H
    let BH = B * H
    let TBH = T * B * H
    var dGI = [Float](repeating: 0, count: B * T * G)  // [B, T, 3H]
    var dGH = [Float](repeating: 0, count: T * B * G)  // [T, B, 3H]
    var dhNext = [Float](repeating: 0, count: BH)  // [B, H]
    let x = inputs[0]
    let wih = inputs[1]
    let whh = inputs[2]
    var dx = Tensor(zeros: inputNeedsGradient ? x.shape : [0])
    var dWih = Tensor(zeros: wih.shape)
    var dWhh = Tensor(zeros: whh.shape)
    var dbih = Tensor(zeros: [G])
    var dbhh = Tensor(zeros: [G])

    dy.withPointer { pdy in
      hs.withUnsafeBufferPointer { hsBuf in
        let phs = hsBuf.baseAddress!
        gates.withUnsafeBufferPointer { gBuf in
          let pr = gBuf.baseAddress!
          let pz = pr + TBH
          let pn = pz + TBH
          let pghn = pn + TBH
          dGI.withUnsafeMutableBufferPointer { dgiBuf in
            let pdgi = dgiBuf.baseAddress!
            dGH.withUnsafeMutableBufferPointer { dghBuf in
              let pdgh = dghBuf.baseAddress!
              dhNext.withUnsafeMutableBufferPointer { dhBuf in
                let pdh = dhBuf.baseAddress!
                whh.withPointer { pwh in
                  for t in stride(from: T - 1, through: 0, by: -1) {
                    let o = t * BH
                    for b in 0..<B {
                      let dyRow = pdy + (b * T + t) * H
                      let dgi = pdgi + (b * T + t) * G
                      let dgh = pdgh + (t * B + b) * G
                      let k = o + b * H
                      let hp = phs + k
                      let dh = pdh + b * H
                      for j in 0..<H {
                        let r = pr[k + j]
                        let z = pz[k + j]
                        let n = pn[k + j]
                        let dhv = dyRow[j] + dh[j]
                        let dan = dhv * (1 - z) * (1 - n * n)
                        let dar = dan * pghn[k + j] * r * (1 - r)
                        let daz = dhv * (hp[j] - n) * z * (1 - z)
                        dgi[j] = dar
                        dgi[H + j] = daz
                        dgi[2 * H + j] = dan
                        dgh[j] = dar
                        dgh[H + j] = daz
                        dgh[2 * H + j] = dan * r
                        dh[j] = dhv * z
                      }
                    }
                    gemm(
                      false, false, m: B, n: H, k: G, pdgh + t * B * G, lda: G, pwh, ldb: H,
                      beta: 1, pdh, ldc: H)
                  }
                }
                // Weight gradients: one GEMM each over all B·T rows.
                dWhh.withMutablePointer {
                  gemm(
                    true, false, m: G, n: H, k: T * B, pdgh, lda: G, phs, ldb: H, beta: 0, $0,
                    ldc: H)
                }
                dbhh.withMutablePointer { addColumnSums(pdgh, rows: T * B, cols: G, into: $0) }
              }
              x.withPointer { px in
                dWih.withMutablePointer {
                  gemm(
                    true, false, m: G, n: I, k: B * T, pdgi, lda: G, px, ldb: I, beta: 0, $0, ldc: I
                  )
                }
              }
              dbih.withMutablePointer { addColumnSums(pdgi, rows: B * T, cols: G, into: $0) }
              if inputNeedsGradient {
                wih.withPointer { pwi in
                  dx.withMutablePointer {
                    gemm(
                      false, false, m: B * T, n: I, k: G, pdgi, lda: G, pwi, ldb: I, beta: 0, $0,
                      ldc: I)
                  }
                }
              }
            }
          }
        }
      }
    }
    var result: [Tensor?] = [inputNeedsGradient ? dx : nil, dWih, dWhh, dbih, dbhh]
    if inputs.count > 5 {
      result.append(stateNeedsGradient ? Tensor(shape: [B, H], storage: dhNext) : nil)
    }
    return result
  }
}

// MARK: - Vectorised activations

/// In-place logistic sigmoid (Engine's vectorised C kernel).
@inline(__always)
func vectorSigmoid(_ p: UnsafeMutablePointer<Float>, count n: Int) {
  Kernels.sigmoid(p, p, count: n)
}

/// In-place tanh (Engine's vectorised C kernel).
@inline(__always)
func vectorTanh(_ p: UnsafeMutablePointer<Float>, count n: Int) {
  Kernels.tanh(p, p, count: n)
}

// MARK: - Layer

/// A stack of GRU layers over [B, T, in] → [B, T, hidden], each layer one fused op.
///
/// Parameters per layer `k`, named as PyTorch's `nn.GRU` so weights map 1:1:
/// `"<name>.weight_ih_l<k>"` [3H, in], `"<name>.weight_hh_l<k>"` [3H, H],
/// `"<name>.bias_ih_l<k>"` [3H], `"<name>.bias_hh_l<k>"` [3H], gate order (r, z, n).
/// Initialisation follows Keras (the paper's code): Glorot-uniform input weights,
/// orthogonal recurrent weights (per gate), zero biases.
public struct GRU: Layer {
  public let inputSize: Int
  public let hiddenSize: Int
  /// Per layer: weight_ih, weight_hh, bias_ih, bias_hh.
  public let layers:
    [(weightIH: Parameter, weightHH: Parameter, biasIH: Parameter, biasHH: Parameter)]

  public init(
    inputSize: Int, hiddenSize: Int, layerCount: Int = 1, name: String, rng: inout SeededRandom
  ) {
    self.inputSize = inputSize
    self.hiddenSize = hiddenSize
    let H = hiddenSize
    var layers: [(Parameter, Parameter, Parameter, Parameter)] = []
    for k in 0..<layerCount {
      let I = k == 0 ? inputSize : H
      let wih = Initializer.glorotUniform([3 * H, I], fanIn: I, fanOut: 3 * H, rng: &rng)
      var whh = Tensor(zeros: [3 * H, H])
      for g in 0..<3 {
        let q = Initializer.orthogonal(rows: H, cols: H, rng: &rng)
        whh.storage.replaceSubrange((g * H * H)..<((g + 1) * H * H), with: q.storage)
      }
      layers.append(
        (
          Parameter(qualifiedName(name, "weight_ih_l\(k)"), wih),
          Parameter(qualifiedName(name, "weight_hh_l\(k)"), whh),
          Parameter(qualifiedName(name, "bias_ih_l\(k)"), Tensor(zeros: [3 * H])),
          Parameter(qualifiedName(name, "bias_hh_l\(k)"), Tensor(zeros: [3 * H]))
        ))
    }
    self.layers = layers
  }

  public var parameters: [Parameter] {
    layers.flatMap { [$0.weightIH, $0.weightHH, $0.biasIH, $0.biasHH] }
  }

  /// Runs all layers from zero initial states; returns the last layer's states [B, T, H].
  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    var h = x
    for l in layers {
      h = gru(
        h, weightIH: tape.parameter(l.weightIH), weightHH: tape.parameter(l.weightHH),
        biasIH: tape.parameter(l.biasIH), biasHH: tape.parameter(l.biasHH))
    }
    return h
  }
}
