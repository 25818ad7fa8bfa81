/// The primitive operations the tape knows. Forward and backward for each live in
/// `Ops*.swift`; `backwardPrimitive` is the one switch over them.
@usableFromInline
enum Op {
  case constant
  case parameter(Parameter)
  case variable
  case custom(any CustomBackward)
  // Primitives (extend here; each case gets a forward function and a backward branch).
  case add
  case multiply
  case matmul
  case sumAll
}

extension Tape {
  @usableFromInline
  func backwardPrimitive(_ node: Node, id: Int, outputGradient g: Tensor) {
    switch node.op {
    case .add:
      accumulateGradient(node.inputs[0], g)
      accumulateGradient(node.inputs[1], g)
    case .multiply:
      let a = values[node.inputs[0]], b = values[node.inputs[1]]
      accumulateGradient(node.inputs[0], elementwise(g, b, *))
      accumulateGradient(node.inputs[1], elementwise(g, a, *))
    case .matmul:
      let a = values[node.inputs[0]], b = values[node.inputs[1]]
      accumulateGradient(node.inputs[0], matmulForward(g, b, transposeB: true))
      accumulateGradient(node.inputs[1], matmulForward(a, g, transposeA: true))
    case .sumAll:
      let shape = values[node.inputs[0]].shape
      accumulateGradient(node.inputs[0], Tensor(repeating: g.scalar, shape: shape))
    case .constant, .parameter, .variable, .custom:
      break
    }
  }
}

// Minimal primitives so dependent modules can build; the full set lives beside these.

@inlinable
func elementwise(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
  precondition(a.shape == b.shape, "elementwise shapes \(a.shape) and \(b.shape)")
  var out = a
  out.storage.withUnsafeMutableBufferPointer { o in
    b.storage.withUnsafeBufferPointer { y in
      for i in 0..<o.count { o[i] = f(o[i], y[i]) }
    }
  }
  return out
}

public func + (a: Var, b: Var) -> Var {
  a.tape.append(elementwise(a.value, b.value, +), op: .add, inputs: [a.id, b.id])
}

public func * (a: Var, b: Var) -> Var {
  a.tape.append(elementwise(a.value, b.value, *), op: .multiply, inputs: [a.id, b.id])
}

/// Matrix product of [m, k] and [k, n].
public func matmul(_ a: Var, _ b: Var) -> Var {
  a.tape.append(matmulForward(a.value, b.value), op: .matmul, inputs: [a.id, b.id])
}

/// Sum of all elements, as a rank-0 tensor.
public func sum(_ a: Var) -> Var {
  a.tape.append(Tensor(scalar: a.value.storage.reduce(0, +)), op: .sumAll, inputs: [a.id])
}

/// `op(A) · op(B)` for rank-2 tensors through the BLAS seam.
public func matmulForward(
  _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false
) -> Tensor {
  precondition(a.rank == 2 && b.rank == 2, "matmul needs rank-2 tensors, got \(a.shape) and \(b.shape)")
  let m = transposeA ? a.shape[1] : a.shape[0]
  let k = transposeA ? a.shape[0] : a.shape[1]
  let k2 = transposeB ? b.shape[1] : b.shape[0]
  let n = transposeB ? b.shape[0] : b.shape[1]
  precondition(k == k2, "matmul inner dimensions differ: \(a.shape) and \(b.shape)")
  var c = Tensor(zeros: [m, n])
  a.storage.withUnsafeBufferPointer { pa in
    b.storage.withUnsafeBufferPointer { pb in
      c.storage.withUnsafeMutableBufferPointer { pc in
        BLAS.sgemm(
          transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
          alpha: 1, a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
          beta: 0, c: pc.baseAddress!, ldc: n)
      }
    }
  }
  return c
}
