import Engine

/// `y = act(x · Wᵀ + b)` over the last axis of `x`, as one custom op.
///
/// Shapes: `x` [..., in], `weight` [out, in] (PyTorch's `Linear` layout), `bias` [out],
/// result [..., out]. Leading axes are flattened into rows, so this is also the
/// time-distributed dense layer for [B, T, F] inputs.
public func dense(_ x: Var, weight: Var, bias: Var?, activation: Activation = .identity) -> Var {
  let w = weight.value
  precondition(w.rank == 2, "dense weight must be [out, in], got \(w.shape)")
  let outSize = w.shape[0]
  let inSize = w.shape[1]
  precondition(x.shape.last == inSize, "dense input \(x.shape) vs weight \(w.shape)")
  let rows = x.value.count / max(inSize, 1)
  let outShape = Array(x.shape.dropLast()) + [outSize]  // [rows, out]
  // With a bias every row is written before the GEMM accumulates into it: no zero fill.
  var y: Tensor
  if let b = bias?.value {
    precondition(b.shape == [outSize], "dense bias \(b.shape) vs \(outSize) outputs")
    y = Tensor(shape: outShape) { out in
      b.withPointer { pb in
        for r in 0..<rows { (out.baseAddress! + r * outSize).initialize(from: pb, count: outSize) }
      }
    }
  } else {
    y = Tensor(zeros: outShape)
  }
  y.withMutablePointer { py in
    x.value.withPointer { px in
      w.withPointer { pw in
        gemm(
          false, true, m: rows, n: outSize, k: inSize, px, lda: inSize, pw, ldb: inSize,
          beta: bias == nil ? 0 : 1, py, ldc: outSize)
      }
    }
    activation.apply(py, count: rows * outSize)
  }
  let tape = x.tape
  guard tape.isRecording else { return tape.constant(y) }
  let op = DenseBackward(
    activation: activation, output: y, rows: rows, inSize: inSize, outSize: outSize,
    inputNeedsGradient: tape.needsGradient(x), weightNeedsGradient: parametersNeedGradient(weight, bias))
  return tape.record(y, inputs: bias.map { [x, weight, $0] } ?? [x, weight], backward: op)
}

final class DenseBackward: CustomBackward {
  let activation: Activation
  let output: Tensor
  let rows, inSize, outSize: Int
  let inputNeedsGradient, weightNeedsGradient: Bool

  init(
    activation: Activation, output: Tensor, rows: Int, inSize: Int, outSize: Int,
    inputNeedsGradient: Bool, weightNeedsGradient: Bool
  ) {
    self.weightNeedsGradient = weightNeedsGradient
    self.activation = activation
    self.output = activation == .identity ? Tensor(zeros: [0]) : output
    self.rows = rows
    self.inSize = inSize
    self.outSize = outSize
    self.inputNeedsGradient = inputNeedsGradient
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let dz = activation.backward(output: output, gradient: outputGradient)  // [rows, out]
    let x = inputs[0]
    let w = inputs[1]
    var dx: Tensor? = nil
    var dw: Tensor? = nil
    dz.withPointer { pdz in
      if inputNeedsGradient {
        dx = Tensor(shape: x.shape) { pdx in
          w.withPointer { pw in
            gemm(
              false, false, m: rows, n: inSize, k: outSize, pdz, lda: outSize, pw, ldb: inSize,
              beta: 0, pdx.baseAddress!, ldc: inSize)
          }
        }
      }
      guard weightNeedsGradient else { return }
      dw = Tensor(shape: w.shape) { pdw in
        x.withPointer { px in
          gemm(
            true, false, m: outSize, n: inSize, k: rows, pdz, lda: outSize, px, ldb: inSize,
            beta: 0, pdw.baseAddress!, ldc: inSize)
        }
      }
    }
    guard inputs.count > 2 else { return [dx, dw] }
    return [dx, dw, weightNeedsGradient ? featureBiasGradient(dz, rows: rows, features: outSize) : nil]
  }
}

/// A fully connected layer: `act(x · Wᵀ + b)` over the last axis (time-distributed for
/// [B, T, F] inputs).
///
/// Parameters: `"<name>.weight"` [out, in] (Glorot uniform), `"<name>.bias"` [out] (zeros).
public struct Dense: Layer {
  public let weight: Parameter
  public let bias: Parameter?
  public let activation: Activation

  public init(
    inputSize: Int, outputSize: Int, activation: Activation = .identity, useBias: Bool = true,
    name: String, rng: inout SeededRandom
  ) {
    weight = Parameter(
      qualifiedName(name, "weight"),
      Initializer.glorotUniform(
        [outputSize, inputSize], fanIn: inputSize, fanOut: outputSize, rng: &rng))
    bias = useBias ? Parameter(qualifiedName(name, "bias"), Tensor(zeros: [outputSize])) : nil
    self.activation = activation
  }

  public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    dense(
      x, weight: tape.parameter(weight), bias: bias.map { tape.parameter($0) },
      activation: activation)
  }
}
