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
/// Cost: the input projections are GEMMs over chunks of ~4k rows; each step is one
/// [B, H]·[H, 3H] GEMM plus vectorised gate math, reading h_{t−1} straight from the output.
/// The backward accumulates `dh` per step with one GEMM (β = 1) and forms the weight
/// gradients with one GEMM each per chunk of steps. Saved for backward: the output and the
/// gates r, z, n, W_hn h + b_hn (4·B·T·H floats, reused across steps from a pool);
/// temporaries are chunk-sized, so memory does not grow with extra [B, T, 3H] buffers.
///
/// When every step sees the same input (a decoder fed a repeated latent code), use
/// `gru(repeating:steps:...)`: same result, without materialising the repeat.
///
/// `inputBias` [B, 3H] (optional) is added to every step's input projection of its row: the
/// projection of an input part that is the same at every step (a latent code beside a
/// per-step embedding), computed once per row by the caller (`GRU.constantProjection`); its
/// gradient is the input-side gate gradient summed over time.
public func gru(
  _ x: Var, weightIH: Var, weightHH: Var, biasIH: Var, biasHH: Var, initialState: Var? = nil,
  inputBias: Var? = nil
) -> Var {
  let xs = x.shape
  precondition(xs.count == 3, "gru input must be [B, T, in], got \(xs)")
  return gruOp(
    x, repeated: false, B: xs[0], T: xs[1], I: xs[2], weightIH: weightIH, weightHH: weightHH,
    biasIH: biasIH, biasHH: biasHH, initialState: initialState, inputBias: inputBias)
}

/// One GRU layer whose input is the same vector at every step: equivalent to
/// `gru(x` repeated over `steps` as [B, steps, in]`, ...)` — same values and gradients up to
/// float rounding — but the input projection x·W_ihᵀ + b_ih is computed once per row
/// ([B, in]·[in, 3H] instead of [B·T, in]·[in, 3H]) and the backward sums the input-side
/// gradient over time before its GEMMs. This is the Grammar VAE decoder's first layer
/// (dense(z) → repeat over steps → GRU).
///
/// Shapes: `x` [B, in], the other arguments as in `gru(_:weightIH:...)`; result [B, steps, H].
public func gru(
  repeating x: Var, steps: Int, weightIH: Var, weightHH: Var, biasIH: Var, biasHH: Var,
  initialState: Var? = nil
) -> Var {
  let xs = x.shape
  precondition(xs.count == 2, "gru(repeating:) input must be [B, in], got \(xs)")
  precondition(steps >= 1, "gru(repeating:) needs steps >= 1, got \(steps)")
  return gruOp(
    x, repeated: true, B: xs[0], T: steps, I: xs[1], weightIH: weightIH, weightHH: weightHH,
    biasIH: biasIH, biasHH: biasHH, initialState: initialState)
}

/// Rows per chunk of the chunked input-projection and weight-gradient GEMMs.
let gruChunkRows = 4096

func gruOp(
  _ x: Var, repeated: Bool, B: Int, T: Int, I: Int, weightIH: Var, weightHH: Var, biasIH: Var,
  biasHH: Var, initialState: Var?, inputBias: Var? = nil
) -> Var {
  let H = weightHH.shape[1]
  let G = 3 * H
  precondition(weightIH.shape == [G, I], "gru weight_ih \(weightIH.shape), want \([G, I])")
  precondition(weightHH.shape == [G, H], "gru weight_hh \(weightHH.shape), want \([G, H])")
  precondition(
    biasIH.shape == [G] && biasHH.shape == [G], "gru biases \(biasIH.shape), \(biasHH.shape)")
  if let h0 = initialState { precondition(h0.shape == [B, H], "gru initial state \(h0.shape)") }
  if let ib = inputBias { precondition(ib.shape == [B, G], "gru input bias \(ib.shape), want \([B, G])") }

  let tape = x.tape
  let inputs =
    [x, weightIH, weightHH, biasIH, biasHH] + (initialState.map { [$0] } ?? []) + (inputBias.map { [$0] } ?? [])
  let recording = inputs.contains { tape.needsGradient($0) }
  // Saved for backward, time-major: per (t, b) row the gates r, z, n and W_hn h + b_hn.
  let gates: ScratchBuffer? = recording ? ScratchPool.shared.take(T * B * 4 * H) : nil
  let y = Tensor(shape: [B, T, H]) { yBuf in
    if B * T * H == 0 { return }
    x.value.withPointer { px in
      weightIH.value.withPointer { pwi in
        weightHH.value.withPointer { pwh in
          biasIH.value.withPointer { pbi in
            biasHH.value.withPointer { pbh in
              let forward = { (ph0: UnsafePointer<Float>?, prb: UnsafePointer<Float>?) in
                gruForward(
                  x: px, repeated: repeated, B: B, T: T, I: I, H: H, wih: pwi, whh: pwh,
                  bih: pbi, bhh: pbh, h0: ph0, rowBias: prb, y: yBuf.baseAddress!, gates: gates?.pointer)
              }
              let withBias = { (ph0: UnsafePointer<Float>?) in
                if let ib = inputBias { ib.value.withPointer { forward(ph0, $0) } } else { forward(ph0, nil) }
              }
              if let h0 = initialState {
                h0.value.withPointer { withBias($0) }
              } else {
                withBias(nil)
              }
            }
          }
        }
      }
    }
  }
  guard recording, let gates else { return tape.constant(y) }
  let op = GRUBackward(
    B: B, T: T, I: I, H: H, repeated: repeated, output: y, gates: gates,
    inputNeedsGradient: tape.needsGradient(x),
    stateNeedsGradient: initialState.map { tape.needsGradient($0) } ?? false,
    hasInitialState: initialState != nil, hasInputBias: inputBias != nil)
  return tape.record(y, inputs: inputs, backward: op)
}

/// The forward recurrence. `x` is [B, T, I] (or [B, I] when `repeated`), `y` [B, T, H] is
/// written completely, `gates` (if any) [T, B, 4H].
func gruForward(
  x: UnsafePointer<Float>, repeated: Bool, B: Int, T: Int, I: Int, H: Int,
  wih: UnsafePointer<Float>, whh: UnsafePointer<Float>, bih: UnsafePointer<Float>,
  bhh: UnsafePointer<Float>, h0: UnsafePointer<Float>?, rowBias: UnsafePointer<Float>? = nil,
  y: UnsafeMutablePointer<Float>, gates: UnsafeMutablePointer<Float>?
) {
  let G = 3 * H
  // Input-side bias with the recurrent r and z biases folded in (b_hn stays inside r ⊙ ·).
  var combinedBias = [Float](repeating: 0, count: G)
  for j in 0..<G { combinedBias[j] = bih[j] + (j < 2 * H ? bhh[j] : 0) }
  let Tc = repeated ? T : max(1, min(T, gruChunkRows / max(B, 1)))
  let giRows = repeated ? B : Tc * B
  let gi = ScratchPool.shared.take(giRows * G)  // input projections (of a chunk)
  let xc = repeated ? nil : ScratchPool.shared.take(Tc * B * I)  // time-major input chunk
  let gh = ScratchPool.shared.take(B * G)  // recurrent projection of one step
  let rowScratch = gates == nil ? ScratchPool.shared.take(4 * H) : nil  // discarded gates
  let pgi = gi.pointer
  let pgh = gh.pointer
  let bhn = bhh + 2 * H
  combinedBias.withUnsafeBufferPointer { cbBuf in
    let cb = cbBuf.baseAddress!
    func projectInputs(_ src: UnsafePointer<Float>, rows: Int) {
      for r in 0..<rows {
        let dst = pgi + r * G
        dst.update(from: cb, count: G)
        // Rows are time-major (t·B + b) in a chunk, or one per b when repeated.
        if let rowBias {
          let rb = rowBias + (r % B) * G
          for j in 0..<G { dst[j] += rb[j] }
        }
      }
      gemm(false, true, m: rows, n: G, k: I, src, lda: I, wih, ldb: I, beta: 1, pgi, ldc: G)
    }
    if repeated { projectInputs(x, rows: B) }
    var t0 = 0
    while t0 < T {
      let tc = min(Tc, T - t0)
      if let xc {
        for i in 0..<tc {
          for b in 0..<B {
            (xc.pointer + (i * B + b) * I).update(from: x + (b * T + t0 + i) * I, count: I)
          }
        }
        projectInputs(xc.pointer, rows: tc * B)
      }
      for t in t0..<(t0 + tc) {
        // h_{t−1}: rows of the output at stride T·H, or the initial state, or zeros.
        let hPrev: UnsafePointer<Float>? = t > 0 ? UnsafePointer(y + (t - 1) * H) : h0
        let ldh = t > 0 ? T * H : H
        if let hPrev {
          gemm(false, true, m: B, n: G, k: H, hPrev, lda: ldh, whh, ldb: H, beta: 0, pgh, ldc: G)
        } else {
          pgh.update(repeating: 0, count: B * G)
        }
        Kernels.gruForwardRows(
          B, hidden: H, gi: repeated ? pgi : pgi + (t - t0) * B * G, giStride: G, gh: pgh,
          ghStride: G, biasHN: bhn, hPrev: hPrev, hPrevStride: ldh, hNext: y + t * H,
          hNextStride: T * H, gates: gates.map { $0 + t * B * 4 * H } ?? rowScratch!.pointer,
          gatesStride: gates == nil ? 0 : 4 * H)
      }
      t0 += tc
    }
  }
  withExtendedLifetime((gi, xc, gh, rowScratch)) {}
}

final class GRUBackward: CustomBackward {
  let B, T, I, H: Int
  let repeated: Bool
  let output: Tensor  // [B, T, H]: h_1 … h_T
  let gates: ScratchBuffer  // [T, B, 4H]: r, z, n, W_hn h + b_hn
  let inputNeedsGradient, stateNeedsGradient: Bool
  /// Which optional inputs follow the five required ones: the initial state, then the
  /// per-row input bias.
  let hasInitialState, hasInputBias: Bool

  init(
    B: Int, T: Int, I: Int, H: Int, repeated: Bool, output: Tensor, gates: ScratchBuffer,
    inputNeedsGradient: Bool, stateNeedsGradient: Bool, hasInitialState: Bool = false, hasInputBias: Bool = false
  ) {
    self.hasInitialState = hasInitialState
    self.hasInputBias = hasInputBias
    self.B = B
    self.T = T
    self.I = I
    self.H = H
    self.repeated = repeated
    self.output = output
    self.gates = gates
    self.inputNeedsGradient = inputNeedsGradient
    self.stateNeedsGradient = stateNeedsGradient
  }

  func backward(outputGradient dy: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let (B, T, I, H) = (self.B, self.T, self.I, self.H)
    let G = 3 * H
    let G4 = 4 * H
    let x = inputs[0]
    let wih = inputs[1]
    let whh = inputs[2]
    let h0 = hasInitialState ? inputs[5] : nil
    // The summed input-side gradient serves a repeated input's GEMMs and the input bias.
    let sumsOverTime = repeated || hasInputBias
    var dx = Tensor(zeros: inputNeedsGradient ? x.shape : [1])
    var dWih = Tensor(zeros: wih.shape)
    var dWhh = Tensor(zeros: whh.shape)
    var dbih = Tensor(zeros: [G])
    var dbhh = Tensor(zeros: [G])
    var dh = Tensor(zeros: [B, H])  // dL/dh_t flowing back from later steps
    let Tc = max(1, min(T, gruChunkRows / max(B, 1)))
    // Per chunk row ((t − t0)·B + b): dL/d(pre-activation) as [r, z, n·r | n], so the
    // first 3H columns are the recurrent-side gradient in gate order (r, z, n).
    let dg = ScratchPool.shared.take(Tc * B * G4)
    let hc = ScratchPool.shared.take(Tc * B * H)  // h_{t−1} of the chunk, time-major
    let xc = repeated ? nil : ScratchPool.shared.take(Tc * B * I)
    let dxc = (repeated || !inputNeedsGradient) ? nil : ScratchPool.shared.take(Tc * B * I)
    // Repeated input: input-side gradient summed over time, [B, 3H].
    var dgiSum = Tensor(zeros: sumsOverTime ? [B, G] : [1])
    let pdg = dg.pointer
    let pgates = UnsafePointer(gates.pointer)
    // Column sums of the chunks' [da_r, da_z, da_n·r, da_n].
    var columnSums = [Float](repeating: 0, count: G4)

    dy.withPointer { pdy in
      output.withPointer { py in
        x.withPointer { px in
          wih.withPointer { pwi in
            whh.withPointer { pwh in
              dh.withMutablePointer { pdh in
                dWih.withMutablePointer { pdWih in
                  dWhh.withMutablePointer { pdWhh in
                    dbih.withMutablePointer { pdbih in
                      dbhh.withMutablePointer { pdbhh in
                        dx.withMutablePointer { pdx in
                          dgiSum.withMutablePointer { pdgiSum in
                            columnSums.withUnsafeMutableBufferPointer { sumsBuf in
                              let pdsums = sumsBuf.baseAddress!
                              (h0 ?? Tensor(zeros: [1])).withPointer { h0Pointer in
                                let ph0 = h0 == nil ? nil : h0Pointer
                                var t1 = T
                                while t1 > 0 {
                                  let t0 = max(0, t1 - Tc)
                                  let rows = (t1 - t0) * B
                                  for t in stride(from: t1 - 1, through: t0, by: -1) {
                                    let dgt = pdg + (t - t0) * B * G4
                                    let hPrev: UnsafePointer<Float>? =
                                      t > 0 ? py + (t - 1) * H : ph0
                                    Kernels.gruBackwardRows(
                                      B, hidden: H, gates: pgates + t * B * G4, gatesStride: G4,
                                      hPrev: hPrev, hPrevStride: t > 0 ? T * H : H,
                                      dy: pdy + t * H, dyStride: T * H, dh: pdh, dhStride: H,
                                      out: dgt, outStride: G4)
                                    gemm(
                                      false, false, m: B, n: H, k: G, dgt, lda: G4, pwh, ldb: H,
                                      beta: 1, pdh, ldc: H)
                                  }
                                  // h_{t−1} rows of the chunk, time-major.
                                  for t in t0..<t1 {
                                    for b in 0..<B {
                                      let dst = hc.pointer + ((t - t0) * B + b) * H
                                      if t > 0 {
                                        dst.update(from: py + (b * T + t - 1) * H, count: H)
                                      } else if let ph0 {
                                        dst.update(from: ph0 + b * H, count: H)
                                      } else {
                                        dst.update(repeating: 0, count: H)
                                      }
                                    }
                                  }
                                  gemm(
                                    true, false, m: G, n: H, k: rows, pdg, lda: G4, hc.pointer,
                                    ldb: H, beta: 1, pdWhh, ldc: H)
                                  // Bias gradients: one pass; b_ih's r, z parts equal b_hh's.
                                  addColumnSums(pdg, rows: rows, cols: G4, ld: G4, into: pdsums)
                                  if sumsOverTime {
                                    for i in 0..<(t1 - t0) {
                                      for b in 0..<B {
                                        let src = pdg + (i * B + b) * G4
                                        let dst = pdgiSum + b * G
                                        for j in 0..<(2 * H) { dst[j] += src[j] }
                                        for j in 0..<H { dst[2 * H + j] += src[G + j] }
                                      }
                                    }
                                  }
                                  if !repeated, let xc {
                                    for t in t0..<t1 {
                                      for b in 0..<B {
                                        (xc.pointer + ((t - t0) * B + b) * I).update(
                                          from: px + (b * T + t) * I, count: I)
                                      }
                                    }
                                    gemm(
                                      true, false, m: 2 * H, n: I, k: rows, pdg, lda: G4,
                                      xc.pointer,
                                      ldb: I, beta: 1, pdWih, ldc: I)
                                    gemm(
                                      true, false, m: H, n: I, k: rows, pdg + G, lda: G4,
                                      xc.pointer, ldb: I, beta: 1, pdWih + 2 * H * I, ldc: I)
                                    if let dxc {
                                      gemm(
                                        false, false, m: rows, n: I, k: 2 * H, pdg, lda: G4, pwi,
                                        ldb: I, beta: 0, dxc.pointer, ldc: I)
                                      gemm(
                                        false, false, m: rows, n: I, k: H, pdg + G, lda: G4,
                                        pwi + 2 * H * I, ldb: I, beta: 1, dxc.pointer, ldc: I)
                                      for t in t0..<t1 {
                                        for b in 0..<B {
                                          (pdx + (b * T + t) * I).update(
                                            from: dxc.pointer + ((t - t0) * B + b) * I, count: I)
                                        }
                                      }
                                    }
                                  }
                                  t1 = t0
                                }
                                for j in 0..<G { pdbhh[j] = pdsums[j] }
                                for j in 0..<(2 * H) { pdbih[j] = pdsums[j] }
                                for j in 0..<H { pdbih[2 * H + j] = pdsums[G + j] }
                                if repeated {
                                  // x is [B, I]; the summed gradient is in gate order (r, z, n).
                                  gemm(
                                    true, false, m: G, n: I, k: B, pdgiSum, lda: G, px, ldb: I,
                                    beta: 0, pdWih, ldc: I)
                                  if inputNeedsGradient {
                                    gemm(
                                      false, false, m: B, n: I, k: G, pdgiSum, lda: G, pwi, ldb: I,
                                      beta: 0, pdx, ldc: I)
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
          }
        }
      }
    }
    withExtendedLifetime((dg, hc, xc, dxc, h0)) {}
    var result: [Tensor?] = [inputNeedsGradient ? dx : nil, dWih, dWhh, dbih, dbhh]
    if hasInitialState { result.append(stateNeedsGradient ? dh : nil) }
    if hasInputBias { result.append(dgiSum) }
    return result
  }
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

  /// Frees the gate and temporary buffers that GRU steps keep cached for reuse by the next
  /// training step (up to 3 GiB); buffers still held by live tapes are unaffected. Call after
  /// training to give the memory back.
  public static func releaseCachedBuffers() { ScratchPool.shared.releaseCached() }

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

  /// Runs all layers for `steps` steps from `initialStates` ([B, H] per layer; zeros when
  /// nil) and returns the top layer's states [B, steps, H] with every layer's last state:
  /// what a decoder that feeds back its own choices calls one step at a time. With
  /// `repeating`, `x` is [B, in] and fed at every step (`gru(repeating:steps:...)`);
  /// otherwise `x` is [B, steps, in].
  public func callAsFunction(
    _ x: Var, repeating: Bool, steps: Int, initialStates: [Var]?, tape: Tape
  ) -> (output: Var, finalStates: [Var]) {
    stack(x, steps: steps, initialStates: initialStates, tape: tape) { h, w, h0 in
      repeating
        ? gru(repeating: h, steps: steps, weightIH: w.ih, weightHH: w.hh, biasIH: w.bih, biasHH: w.bhh, initialState: h0)
        : gru(h, weightIH: w.ih, weightHH: w.hh, biasIH: w.bih, biasHH: w.bhh, initialState: h0)
    }
  }

  /// Runs every layer, the first by `first` (its input, its weights on the tape, its initial
  /// state), the others as plain GRU layers; the top layer's states and each layer's last.
  private func stack(
    _ x: Var, steps: Int, initialStates: [Var]?, tape: Tape,
    first: (_ x: Var, _ w: (ih: Var, hh: Var, bih: Var, bhh: Var), _ h0: Var?) -> Var
  ) -> (output: Var, finalStates: [Var]) {
    precondition(!layers.isEmpty, "GRU without layers")
    precondition(initialStates == nil || initialStates!.count == layers.count, "GRU: one initial state per layer")
    var h = x
    var last: [Var] = []
    for (k, l) in layers.enumerated() {
      let w = (
        ih: tape.parameter(l.weightIH), hh: tape.parameter(l.weightHH), bih: tape.parameter(l.biasIH),
        bhh: tape.parameter(l.biasHH)
      )
      let h0 = initialStates?[k]
      h = k == 0 ? first(h, w, h0) : gru(h, weightIH: w.ih, weightHH: w.hh, biasIH: w.bih, biasHH: w.bhh, initialState: h0)
      last.append(slice(h, axis: 1, range: (steps - 1)..<steps).reshaped([h.shape[0], hiddenSize]))
    }
    return (h, last)
  }

  /// The first layer's input projection of `c` [B, width], the first `width` input features
  /// when they are the same at every step: [B, 3H], for `callAsFunction(_:constantProjection:...)`.
  public func constantProjection(_ c: Var, tape: Tape) -> Var {
    let w = tape.parameter(layers[0].weightIH)
    return dense(c, weight: slice(w, axis: 1, range: 0..<c.shape[1]), bias: nil)
  }

  /// As `callAsFunction(_:repeating:steps:initialStates:tape:)` on the input
  /// `concat([repeat(c), x], axis: 2)`, where `p = constantProjection(c)` stands in for the
  /// constant part `c` (`width` features): the first layer multiplies only `x` [B, steps,
  /// in − width] at each step, and adds `p` once per row. Same values and gradients up to
  /// rounding; a decoder fed its latent code beside its previous choice saves the latent
  /// code's share of the input GEMMs (and computes `p` once per decode).
  public func callAsFunction(
    _ x: Var, constantProjection p: Var, width: Int, initialStates: [Var]?, tape: Tape
  ) -> (output: Var, finalStates: [Var]) {
    precondition(x.shape.count == 3 && width + x.shape[2] == inputSize, "GRU input \(x.shape) beside \(width) constant features")
    return stack(x, steps: x.shape[1], initialStates: initialStates, tape: tape) { h, w, h0 in
      gru(
        h, weightIH: slice(w.ih, axis: 1, range: width..<inputSize), weightHH: w.hh, biasIH: w.bih, biasHH: w.bhh,
        initialState: h0, inputBias: p)
    }
  }

  /// Runs all layers from zero initial states on the same input `x` [B, in] at each of
  /// `steps` steps; returns the last layer's states [B, steps, H]. Equivalent to calling the
  /// layer on `x` repeated to [B, steps, in], but the first layer projects `x` once per row
  /// (`gru(repeating:steps:...)`), so it is cheaper and never materialises the repeat —
  /// the Grammar VAE decoder's `dense(z) → repeat → GRU`.
  public func callAsFunction(repeating x: Var, steps: Int, tape: Tape) -> Var {
    precondition(!layers.isEmpty, "GRU without layers")
    var h = x
    for (k, l) in layers.enumerated() {
      let (wih, whh, bih, bhh) = (
        tape.parameter(l.weightIH), tape.parameter(l.weightHH), tape.parameter(l.biasIH),
        tape.parameter(l.biasHH)
      )
      h =
        k == 0
        ? gru(repeating: h, steps: steps, weightIH: wih, weightHH: whh, biasIH: bih, biasHH: bhh)
        : gru(h, weightIH: wih, weightHH: whh, biasIH: bih, biasHH: bhh)
    }
    return h
  }
}
