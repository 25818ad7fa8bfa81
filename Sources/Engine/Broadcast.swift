// Broadcasting machinery (numpy rules): shapes align on the right, a dimension of 1
// stretches. One strided row loop serves binary forward ops, reductions to a broadcast
// shape (the backward of every broadcasting op) and materialised broadcasts.

/// The numpy broadcast of two shapes; traps naming both when they are incompatible.
@usableFromInline
func broadcastShape(_ a: [Int], _ b: [Int], _ what: StaticString) -> [Int] {
  let r = max(a.count, b.count)
  var out = [Int](repeating: 1, count: r)
  for i in 0..<r {
    let da = i < r - a.count ? 1 : a[i - (r - a.count)]
    let db = i < r - b.count ? 1 : b[i - (r - b.count)]
    precondition(
      da == db || da == 1 || db == 1, "\(what): shapes \(a) and \(b) do not broadcast")
    out[i] = da == 1 ? db : da
  }
  return out
}

/// Strides for reading a tensor of `shape` as if broadcast to `out`: 0 on stretched
/// dimensions and on the missing leading ones.
@usableFromInline
func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
  precondition(shape.count <= out.count, "cannot broadcast \(shape) to \(out)")
  let s = strides(of: shape)
  let offset = out.count - shape.count
  var r = [Int](repeating: 0, count: out.count)
  for i in 0..<shape.count {
    precondition(
      shape[i] == out[i + offset] || shape[i] == 1, "cannot broadcast \(shape) to \(out)")
    if shape[i] != 1 { r[i + offset] = s[i] }
  }
  return r
}

/// Iteration over a contiguous output of shape `dims` reading two strided inputs; size-1
/// dimensions are dropped and compatible neighbours merged, so the common cases (same
/// shape, bias row, per-row scalar) become one or two long contiguous loops.
@usableFromInline
struct StridedLoop {
  @usableFromInline var dims: [Int] = []
  @usableFromInline var sa: [Int] = []
  @usableFromInline var sb: [Int] = []

  @usableFromInline
  init(shape: [Int], sa a: [Int], sb b: [Int]) {
    for i in 0..<shape.count where shape[i] != 1 {
      if let last = dims.indices.last, sa[last] == a[i] * shape[i], sb[last] == b[i] * shape[i] {
        dims[last] *= shape[i]
        sa[last] = a[i]
        sb[last] = b[i]
      } else {
        dims.append(shape[i])
        sa.append(a[i])
        sb.append(b[i])
      }
    }
    if dims.isEmpty {
      dims = [shape.contains(0) ? 0 : 1]
      sa = [0]
      sb = [0]
    }
  }

  /// Length and input strides of the innermost row.
  var rowLength: Int { dims[dims.count - 1] }
  var rowStrideA: Int { sa[sa.count - 1] }
  var rowStrideB: Int { sb[sb.count - 1] }

  /// Calls `body(outOffset, aOffset, bOffset)` at the start of every innermost row.
  @inline(__always)
  func forEachRow(_ body: (Int, Int, Int) -> Void) {
    let n = rowLength
    if n == 0 || dims.contains(0) { return }
    let outer = dims.count - 1
    if outer == 0 {
      body(0, 0, 0)
      return
    }
    var index = [Int](repeating: 0, count: outer)
    var oa = 0
    var ob = 0
    var o = 0
    while true {
      body(o, oa, ob)
      o += n
      var d = outer - 1
      while d >= 0 {
        index[d] += 1
        oa += sa[d]
        ob += sb[d]
        if index[d] < dims[d] { break }
        oa -= sa[d] * dims[d]
        ob -= sb[d] * dims[d]
        index[d] = 0
        d -= 1
      }
      if d < 0 { return }
    }
  }
}

/// `out[i] = f(a[i], b[i])` under broadcasting; the fast paths keep the inner loop
/// contiguous so it vectorises.
@inline(__always)
func broadcastBinary(_ a: Tensor, _ b: Tensor, _ what: StaticString, _ f: (Float, Float) -> Float)
  -> Tensor
{
  if a.shape == b.shape {
    var out = a
    out.storage.withUnsafeMutableBufferPointer { po in
      b.storage.withUnsafeBufferPointer { pb in
        for i in 0..<po.count { po[i] = f(po[i], pb[i]) }
      }
    }
    return out
  }
  let shape = broadcastShape(a.shape, b.shape, what)
  let loop = StridedLoop(
    shape: shape, sa: broadcastStrides(a.shape, to: shape),
    sb: broadcastStrides(b.shape, to: shape))
  var out = Tensor(zeros: shape)
  let n = loop.rowLength
  let sa = loop.rowStrideA
  let sb = loop.rowStrideB
  out.storage.withUnsafeMutableBufferPointer { po in
    a.storage.withUnsafeBufferPointer { pa in
      b.storage.withUnsafeBufferPointer { pb in
        loop.forEachRow { o, ia, ib in
          if sa == 1 && sb == 1 {
            for i in 0..<n { po[o + i] = f(pa[ia + i], pb[ib + i]) }
          } else if sa == 1 && sb == 0 {
            let y = pb[ib]
            for i in 0..<n { po[o + i] = f(pa[ia + i], y) }
          } else if sa == 0 && sb == 1 {
            let x = pa[ia]
            for i in 0..<n { po[o + i] = f(x, pb[ib + i]) }
          } else {
            for i in 0..<n { po[o + i] = f(pa[ia + i * sa], pb[ib + i * sb]) }
          }
        }
      }
    }
  }
  return out
}

extension Tensor {
  /// Sums over the dimensions along which `shape` was broadcast to `self.shape`: the
  /// backward of broadcasting. Returns `self` unchanged when the shapes are equal.
  public func summed(toShape target: [Int]) -> Tensor {
    if shape == target { return self }
    let loop = StridedLoop(
      shape: shape, sa: strides(of: shape), sb: broadcastStrides(target, to: shape))
    var out = Tensor(zeros: target)
    let n = loop.rowLength
    let sa = loop.rowStrideA
    let sb = loop.rowStrideB
    out.storage.withUnsafeMutableBufferPointer { po in
      storage.withUnsafeBufferPointer { pg in
        loop.forEachRow { _, ia, ib in
          if sb == 0 {
            var acc: Float = 0
            for i in 0..<n { acc += pg[ia + i * sa] }
            po[ib] += acc
          } else if sa == 1 && sb == 1 {
            for i in 0..<n { po[ib + i] += pg[ia + i] }
          } else {
            for i in 0..<n { po[ib + i * sb] += pg[ia + i * sa] }
          }
        }
      }
    }
    return out
  }

  /// This tensor repeated along broadcast dimensions to `target` (numpy `broadcast_to`).
  public func broadcast(to target: [Int]) -> Tensor {
    if shape == target { return self }
    let loop = StridedLoop(
      shape: target, sa: broadcastStrides(shape, to: target),
      sb: [Int](repeating: 0, count: target.count))
    var out = Tensor(zeros: target)
    let n = loop.rowLength
    let sa = loop.rowStrideA
    out.storage.withUnsafeMutableBufferPointer { po in
      storage.withUnsafeBufferPointer { px in
        loop.forEachRow { o, ia, _ in
          if sa == 0 {
            let v = px[ia]
            for i in 0..<n { po[o + i] = v }
          } else {
            for i in 0..<n { po[o + i] = px[ia + i * sa] }
          }
        }
      }
    }
    return out
  }
}

/// Sum of `n` floats with sixteen independent partial sums (breaks the add latency chain,
/// and is a little more accurate than one running sum).
@inlinable @inline(__always)
public func fastSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc = SIMD16<Float>()
  var i = 0
  let raw = UnsafeRawPointer(p)
  while i + 16 <= n {
    acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
    i += 16
  }
  var s = acc.sum()
  while i < n {
    s += p[i]
    i += 1
  }
  return s
}

/// Largest of `n` floats (NaN entries are skipped); -inf for none.
@inline(__always)
func fastMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc = SIMD16<Float>(repeating: -.infinity)
  var i = 0
  let raw = UnsafeRawPointer(p)
  while i + 16 <= n {
    let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
    acc.replace(with: v, where: acc .< v)
    i += 16
  }
  var m = acc.max()
  while i < n {
    if p[i] > m { m = p[i] }
    i += 1
  }
  return m
}
