// Shape changes and indexing: reshape, permute, slice, concat, stack, gather, oneHot.

/// The same elements under a new shape (one dimension may be -1).
public func reshape(_ x: Var, _ shape: [Int]) -> Var {
  x.tape.append(x.value.reshaped(shape), op: .reshape, inputs: [x.id])
}

extension Var {
  /// The same elements under a new shape (one dimension may be -1).
  public func reshaped(_ shape: [Int]) -> Var { reshape(self, shape) }
}

/// Reorders axes: output axis `i` is input axis `axes[i]` (numpy `transpose(axes)`).
public func permute(_ x: Var, _ axes: [Int]) -> Var {
  x.tape.append(x.value.permuted(axes), op: .permute(axes: axes), inputs: [x.id])
}

/// Matrix transpose of a rank-2 tensor.
public func transpose(_ x: Var) -> Var {
  precondition(x.shape.count == 2, "transpose needs a rank-2 tensor, got \(x.shape)")
  return permute(x, [1, 0])
}

/// Elements `range` along `axis`.
public func slice(_ x: Var, axis: Int, range: Range<Int>) -> Var {
  let axis = normalizedAxis(axis, x.shape, "slice")
  return x.tape.append(
    x.value.sliced(axis: axis, range: range), op: .slice(axis: axis, start: range.lowerBound),
    inputs: [x.id])
}

/// Joins tensors along an existing `axis`; all other dimensions must agree.
public func concat(_ xs: [Var], axis: Int) -> Var {
  precondition(!xs.isEmpty, "concat of no tensors")
  let tape = xs[0].tape
  let values = xs.map { x -> Tensor in
    precondition(x.tape === tape, "concat: operands live on different tapes")
    return x.value
  }
  let axis = normalizedAxis(axis, values[0].shape, "concat")
  return tape.append(
    Tensor(concatenating: values, axis: axis), op: .concat(axis: axis), inputs: xs.map(\.id))
}

/// Joins same-shaped tensors along a new `axis` (0...rank).
public func stack(_ xs: [Var], axis: Int) -> Var {
  precondition(!xs.isEmpty, "stack of no tensors")
  let shape = xs[0].shape
  let axis = axis < 0 ? axis + shape.count + 1 : axis
  precondition(axis >= 0 && axis <= shape.count, "stack: axis \(axis) out of range for \(shape)")
  var expanded = shape
  expanded.insert(1, at: axis)
  return concat(
    xs.map { x in
      precondition(x.shape == shape, "stack: shapes \(shape) and \(x.shape) differ")
      return reshape(x, expanded)
    }, axis: axis)
}

/// Rows of `x` along axis 0 picked by `indices` (an embedding lookup): [N, …] → [count, …].
/// The backward scatter-adds, so repeated indices accumulate.
public func gather(_ x: Var, indices: [Int]) -> Var {
  let xv = x.value
  precondition(xv.rank >= 1, "gather needs rank ≥ 1, got \(xv.shape)")
  let rows = xv.shape[0]
  let row = xv.count / max(1, rows)
  var shape = xv.shape
  shape[0] = indices.count
  let y = Tensor(shape: shape) { out in
    xv.storage.withUnsafeBufferPointer { px in
      for (r, index) in indices.enumerated() {
        precondition(
          index >= 0 && index < rows, "gather index \(index) out of range for \(xv.shape)")
        for j in 0..<row { out[r * row + j] = px[index * row + j] }
      }
    }
  }
  return x.tape.append(y, op: .gather(indices: x.tape.isRecording ? indices : []), inputs: [x.id])
}

/// One-hot rows: [indices.count, depth] with a 1 at each index.
public func oneHot(_ indices: [Int], depth: Int) -> Tensor {
  var t = Tensor(zeros: [indices.count, depth])
  for (r, index) in indices.enumerated() {
    precondition(
      index >= 0 && index < depth, "oneHot index \(index) out of range for depth \(depth)")
    t.storage[r * depth + index] = 1
  }
  return t
}

extension Tensor {
  /// Axes reordered: output axis `i` is input axis `axes[i]`.
  public func permuted(_ axes: [Int]) -> Tensor {
    precondition(
      axes.count == rank && Set(axes) == Set(0..<rank),
      "permute axes \(axes) are not a permutation for shape \(shape)")
    if axes == Array(0..<rank) { return self }
    let inStrides = strides(of: shape)
    let outShape = axes.map { shape[$0] }
    let loop = StridedLoop(
      shape: outShape, sa: axes.map { inStrides[$0] }, sb: [Int](repeating: 0, count: rank))
    let n = loop.rowLength
    let sa = loop.rowStrideA
    var out = Tensor(zeros: outShape)
    out.storage.withUnsafeMutableBufferPointer { po in
      storage.withUnsafeBufferPointer { px in
        loop.forEachRow { o, ia, _ in
          for i in 0..<n { po[o + i] = px[ia + i * sa] }
        }
      }
    }
    return out
  }

  /// Elements `range` along `axis`.
  public func sliced(axis: Int, range: Range<Int>) -> Tensor {
    precondition(
      range.lowerBound >= 0 && range.upperBound <= shape[axis],
      "slice \(range) out of bounds for axis \(axis) of shape \(shape)")
    let (outer, n, inner) = axisSplit(shape, axis)
    var outShape = shape
    outShape[axis] = range.count
    let block = range.count * inner
    return Tensor(shape: outShape) { po in
      storage.withUnsafeBufferPointer { px in
        for o in 0..<outer {
          let src = o * n * inner + range.lowerBound * inner
          for j in 0..<block { po[o * block + j] = px[src + j] }
        }
      }
    }
  }

  /// Adds `g` into the slice starting at `start` along `axis` (the backward of `sliced`).
  mutating func addSlice(_ g: Tensor, axis: Int, start: Int) {
    let (outer, n, inner) = axisSplit(shape, axis)
    let block = g.shape[axis] * inner
    storage.withUnsafeMutableBufferPointer { px in
      g.storage.withUnsafeBufferPointer { pg in
        for o in 0..<outer {
          let dst = o * n * inner + start * inner
          for j in 0..<block { px[dst + j] += pg[o * block + j] }
        }
      }
    }
  }

  /// Tensors joined along `axis`; all other dimensions must agree.
  public init(concatenating parts: [Tensor], axis: Int) {
    precondition(!parts.isEmpty, "concatenating no tensors")
    var shape = parts[0].shape
    var total = 0
    for p in parts {
      var a = p.shape
      var b = shape
      precondition(a.count == b.count, "concat shapes \(shape) and \(p.shape) differ in rank")
      a[axis] = 0
      b[axis] = 0
      precondition(a == b, "concat shapes \(shape) and \(p.shape) differ off axis \(axis)")
      total += p.shape[axis]
    }
    shape[axis] = total
    let (outer, _, inner) = axisSplit(shape, axis)
    self.init(shape: shape) { po in
      var offset = 0
      for o in 0..<outer {
        for p in parts {
          let block = p.shape[axis] * inner
          p.storage.withUnsafeBufferPointer { px in
            for j in 0..<block { po[offset + j] = px[o * block + j] }
          }
          offset += block
        }
      }
    }
  }
}
