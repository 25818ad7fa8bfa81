// Reductions over contiguous floats in sixteen independent lanes, beside Engine's
// `fastSum`: the add latency chain of a running sum is broken, so the loops run at load
// speed (and are a little more accurate than one running sum). Used by batch norm.

/// Σ (p[i] − m)² over `n` floats in sixteen lanes.
@inline(__always)
func laneSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ m: Float) -> Float {
  var acc = SIMD16<Float>()
  let mv = SIMD16<Float>(repeating: m)
  var i = 0
  let raw = UnsafeRawPointer(p)
  while i + 16 <= n {
    let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) - mv
    acc += d * d
    i += 16
  }
  var s = acc.sum()
  while i < n {
    s += (p[i] - m) * (p[i] - m)
    i += 1
  }
  return s
}

/// (Σ a[i], Σ a[i]·b[i]) over `n` floats in sixteen lanes.
@inline(__always)
func laneSumAndDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
  var sa = SIMD16<Float>()
  var sab = SIMD16<Float>()
  var i = 0
  let (ra, rb) = (UnsafeRawPointer(a), UnsafeRawPointer(b))
  while i + 16 <= n {
    let va = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
    sa += va
    sab += va * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
    i += 16
  }
  var (s, d) = (sa.sum(), sab.sum())
  while i < n {
    s += a[i]
    d += a[i] * b[i]
    i += 1
  }
  return (s, d)
}
