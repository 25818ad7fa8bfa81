// Reductions and the fused (masked) softmax family.

/// Sum of all elements, as a rank-0 tensor.
public func sum(_ x: Var) -> Var {
  var total: Float = 0
  x.value.storage.withUnsafeBufferPointer { p in
    // Sixteen independent partial sums: vectorisable and more accurate than one chain.
    var acc = SIMD16<Float>()
    let n16 = p.count / 16 * 16
    var i = 0
    while i < n16 {
      acc += SIMD16(p[i..<i + 16])
      i += 16
    }
    total = acc.sum()
    while i < p.count {
      total += p[i]
      i += 1
    }
  }
  return x.tape.append(Tensor(scalar: total), op: .sumAll, inputs: [x.id])
}

/// The shape after reducing `axes` (kept as 1 or dropped).
@usableFromInline
func reducedShapes(_ shape: [Int], _ axes: [Int], _ what: StaticString) -> (
  kept: [Int], dropped: [Int]
) {
  var kept = shape
  var reduce = [Bool](repeating: false, count: shape.count)
  for a in axes {
    let a = normalizedAxis(a, shape, what)
    kept[a] = 1
    reduce[a] = true
  }
  let dropped = shape.indices.filter { !reduce[$0] }.map { shape[$0] }
  return (kept, dropped)
}

/// Sum over `axes` (negative axes count from the end); reduced axes are kept as size 1
/// when `keepingDims`.
public func sum(_ x: Var, axes: [Int], keepingDims: Bool = false) -> Var {
  let (kept, dropped) = reducedShapes(x.shape, axes, "sum(axes:)")
  let y = x.value.summed(toShape: kept)
  return x.tape.append(
    keepingDims ? y : y.reshaped(dropped), op: .sumAxes(keptShape: kept), inputs: [x.id])
}

/// Mean of all elements (rank 0).
public func mean(_ x: Var) -> Var { sum(x) * (1 / Float(max(1, x.value.count))) }

/// Mean over `axes`.
public func mean(_ x: Var, axes: [Int], keepingDims: Bool = false) -> Var {
  let (kept, _) = reducedShapes(x.shape, axes, "mean(axes:)")
  let n = x.value.count / max(1, kept.reduce(1, *))
  return sum(x, axes: axes, keepingDims: keepingDims) * (1 / Float(max(1, n)))
}

/// Calls `body(base, stride)` for every lane along `axis`: element `j` of the lane is at
/// `base + j · stride`. The output index of the lane (for a reduction) is its position in
/// the enumeration.
@inline(__always)
func forEachLane(_ shape: [Int], axis: Int, _ body: (Int, Int, Int) -> Void) {
  let (outer, n, inner) = axisSplit(shape, axis)
  var lane = 0
  for o in 0..<outer {
    for q in 0..<inner {
      body(lane, o * n * inner + q, inner)
      lane += 1
    }
  }
}

/// Shape of a one-axis reduction.
@usableFromInline
func reducedShape(_ shape: [Int], axis: Int, keepingDims: Bool) -> [Int] {
  var s = shape
  if keepingDims { s[axis] = 1 } else { s.remove(at: axis) }
  return s
}

/// Maximum along `axis`. The gradient goes to the first maximal element of each lane.
public func max(_ x: Var, axis: Int, keepingDims: Bool = false) -> Var {
  let xv = x.value
  let axis = normalizedAxis(axis, xv.shape, "max(axis:)")
  let n = xv.shape[axis]
  precondition(n > 0, "max(axis:) over an empty axis of shape \(xv.shape)")
  let outShape = reducedShape(xv.shape, axis: axis, keepingDims: keepingDims)
  var argmax = [Int](repeating: 0, count: xv.count / n)
  var y = Tensor(zeros: outShape)
  xv.storage.withUnsafeBufferPointer { px in
    y.storage.withUnsafeMutableBufferPointer { py in
      forEachLane(xv.shape, axis: axis) { lane, base, stride in
        var best = px[base]
        var at = base
        for j in 1..<max(1, n) where px[base + j * stride] > best {
          best = px[base + j * stride]
          at = base + j * stride
        }
        py[lane] = best
        argmax[lane] = at
      }
    }
  }
  return x.tape.append(y, op: .max(argmax: x.tape.isRecording ? argmax : []), inputs: [x.id])
}

/// `log Σ exp(x)` along `axis`, computed stably as `m + log Σ exp(x − m)` with `m` the
/// lane maximum. A lane of all `-inf` gives `-inf` (and zero gradient).
public func logSumExp(_ x: Var, axis: Int, keepingDims: Bool = false) -> Var {
  let xv = x.value
  let axis = normalizedAxis(axis, xv.shape, "logSumExp(axis:)")
  let n = xv.shape[axis]
  var y = Tensor(zeros: reducedShape(xv.shape, axis: axis, keepingDims: keepingDims))
  var lane = [Float](repeating: 0, count: n)
  xv.storage.withUnsafeBufferPointer { px in
    y.storage.withUnsafeMutableBufferPointer { py in
      lane.withUnsafeMutableBufferPointer { t in
        forEachLane(xv.shape, axis: axis) { l, base, stride in
          var m = -Float.infinity
          for j in 0..<n { m = Swift.max(m, px[base + j * stride]) }
          if !m.isFinite {
            py[l] = n == 0 ? -.infinity : m
            return
          }
          for j in 0..<n { t[j] = px[base + j * stride] - m }
          Kernels.exp(t.baseAddress!, t.baseAddress!, count: n)
          py[l] = m + _logf(fastSum(t.baseAddress!, n))
        }
      }
    }
  }
  return x.tape.append(y, op: .logSumExp(axis: axis), inputs: [x.id])
}

@usableFromInline
func logSumExpBackward(_ x: Tensor, _ y: Tensor, _ g: Tensor, axis: Int) -> Tensor {
  var gx = Tensor(zeros: x.shape)
  let n = x.shape[axis]
  x.storage.withUnsafeBufferPointer { px in
    y.storage.withUnsafeBufferPointer { py in
      g.storage.withUnsafeBufferPointer { pg in
        gx.storage.withUnsafeMutableBufferPointer { pgx in
          forEachLane(x.shape, axis: axis) { l, base, stride in
            let yl = py[l]
            let gl = pg[l]
            if yl == -.infinity { return }
            for j in 0..<n {
              let k = base + j * stride
              pgx[k] = gl * _exp(px[k] - yl)
            }
          }
        }
      }
    }
  }
  return gx
}

/// Softmax along `axis`, optionally masked.
///
/// ```
/// y_j = mask_j · exp(x_j − m) / Σ_k mask_k · exp(x_k − m),   m = max over allowed x_k
/// ```
/// `mask` (broadcastable to `x`; nonzero = allowed, 0 = masked) gives masked positions
/// exactly zero probability and zero gradient. A lane with every position masked yields
/// all zeros (not NaN) and zero gradient.
public func softmax(_ x: Var, axis: Int = -1, mask: Tensor? = nil) -> Var {
  let axis = normalizedAxis(axis, x.shape, "softmax")
  let y = softmaxForward(x.value, axis: axis, mask: mask, log: false)
  return x.tape.append(y, op: .softmax(axis: axis), inputs: [x.id])
}

/// Log-softmax along `axis`, optionally masked (see `softmax`): masked positions are
/// exactly `-inf` and get zero gradient; allowed positions are normalised over the allowed
/// ones only. A lane with every position masked is all `-inf` with zero gradient; allowed
/// entries never become NaN.
///
/// Note: `0 · -inf` is NaN, so pick target entries with `gather`/`oneHot`-weighted sums only
/// over allowed positions, or add a finite floor before multiplying by a one-hot target.
public func logSoftmax(_ x: Var, axis: Int = -1, mask: Tensor? = nil) -> Var {
  let axis = normalizedAxis(axis, x.shape, "logSoftmax")
  let y = softmaxForward(x.value, axis: axis, mask: mask, log: true)
  return x.tape.append(y, op: .logSoftmax(axis: axis), inputs: [x.id])
}

@usableFromInline
func softmaxForward(_ x: Tensor, axis: Int, mask: Tensor?, log: Bool) -> Tensor {
  let m = mask.map { mask -> Tensor in
    _ = broadcastShape(mask.shape, x.shape, "softmax mask")
    precondition(
      mask.rank <= x.rank, "softmax mask \(mask.shape) has more axes than input \(x.shape)")
    return mask.broadcast(to: x.shape)
  }
  let n = x.shape[axis]
  var y = Tensor(zeros: x.shape)
  var lane = [Float](repeating: 0, count: n)
  x.storage.withUnsafeBufferPointer { px in
    y.storage.withUnsafeMutableBufferPointer { py in
      lane.withUnsafeMutableBufferPointer { t in
        withOptionalBuffer(m) { pm in
          forEachLane(x.shape, axis: axis) { _, base, stride in
            // Gather the lane into `t`, masked entries as -inf.
            if let pm, stride == 1 {
              for j in 0..<n { t[j] = pm[base + j] != 0 ? px[base + j] : -.infinity }
            } else if let pm {
              for j in 0..<n {
                let k = base + j * stride
                t[j] = pm[k] != 0 ? px[k] : -.infinity
              }
            } else if stride == 1 {
              for j in 0..<n { t[j] = px[base + j] }
            } else {
              for j in 0..<n { t[j] = px[base + j * stride] }
            }
            let maxv = fastMax(t.baseAddress!, n)
            if maxv == -.infinity {
              // Everything masked (or -inf): zero probability everywhere.
              for j in 0..<n { py[base + j * stride] = log ? -.infinity : 0 }
              return
            }
            for j in 0..<n { t[j] -= maxv }
            if log {
              for j in 0..<n { py[base + j * stride] = t[j] }
            }
            Kernels.exp(t.baseAddress!, t.baseAddress!, count: n)  // exp(-inf) = 0 exactly
            let s = fastSum(t.baseAddress!, n)
            if log {
              let ls = _logf(s)
              for j in 0..<n { py[base + j * stride] -= ls }  // -inf stays -inf
            } else {
              let r = 1 / s
              for j in 0..<n { py[base + j * stride] = t[j] * r }
            }
          }
        }
      }
    }
  }
  return y
}

@usableFromInline
func softmaxBackward(_ y: Tensor, _ g: Tensor, axis: Int, log: Bool) -> Tensor {
  var gx = Tensor(zeros: y.shape)
  let n = y.shape[axis]
  y.storage.withUnsafeBufferPointer { py in
    g.storage.withUnsafeBufferPointer { pg in
      gx.storage.withUnsafeMutableBufferPointer { pgx in
        forEachLane(y.shape, axis: axis) { _, base, stride in
          if log {
            // dx_j = g_j − p_j Σ_k g_k over allowed k; masked (y = -inf) get 0.
            var s: Float = 0
            for j in 0..<n where py[base + j * stride] != -.infinity { s += pg[base + j * stride] }
            for j in 0..<n {
              let k = base + j * stride
              if py[k] != -.infinity { pgx[k] = pg[k] - _exp(py[k]) * s }
            }
          } else {
            // dx_j = y_j (g_j − Σ_k g_k y_k); masked have y = 0, so get 0.
            var s: Float = 0
            for j in 0..<n { s += pg[base + j * stride] * py[base + j * stride] }
            for j in 0..<n {
              let k = base + j * stride
              pgx[k] = py[k] * (pg[k] - s)
            }
          }
        }
      }
    }
  }
  return gx
}

@inline(__always)
func withOptionalBuffer<R>(_ t: Tensor?, _ body: (UnsafeBufferPointer<Float>?) -> R) -> R {
  if let t { return t.storage.withUnsafeBufferPointer { body($0) } }
  return body(nil)
}
