/// SplitMix64-seeded xoshiro256**: the same seed gives the same bits on every platform.
/// Codable, so a training checkpoint can store the stream position.
public struct SeededRandom: RandomNumberGenerator, Sendable, Codable, Equatable {
  private var s0, s1, s2, s3: UInt64

  public init(seed: UInt64) {
    var z = seed
    func splitMix(_ x: inout UInt64) -> UInt64 {
      x &+= 0x9E37_79B9_7F4A_7C15
      var r = x
      r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
      r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
      return r ^ (r >> 31)
    }
    s0 = splitMix(&z)
    s1 = splitMix(&z)
    s2 = splitMix(&z)
    s3 = splitMix(&z)
  }

  public mutating func next() -> UInt64 {
    let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << 45) | (s3 >> 19)
    return result
  }

  /// Uniform in [0, 1) with 24 random bits (exactly representable as Float).
  public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

  /// Standard normal by Box–Muller; deterministic given the seed.
  public mutating func nextNormal() -> Float {
    var u1 = nextUniform()
    if u1 < 1e-30 { u1 = 1e-30 }
    let u2 = nextUniform()
    return (-2 * _log(u1)).squareRoot() * _cos(2 * Float.pi * u2)
  }
}

extension Tensor {
  /// Normal(mean, std) entries drawn from `rng` in storage order.
  public init(randomNormal shape: [Int], mean: Float = 0, std: Float = 1, rng: inout SeededRandom) {
    let n = shape.reduce(1, *)
    var data = [Float](repeating: 0, count: n)
    for i in 0..<n { data[i] = mean + std * rng.nextNormal() }
    self.init(shape: shape, storage: data)
  }

  /// Uniform[low, high) entries drawn from `rng` in storage order.
  public init(randomUniform shape: [Int], low: Float = 0, high: Float = 1, rng: inout SeededRandom)
  {
    let n = shape.reduce(1, *)
    var data = [Float](repeating: 0, count: n)
    for i in 0..<n { data[i] = low + (high - low) * rng.nextUniform() }
    self.init(shape: shape, storage: data)
  }
}

#if canImport(Glibc)
  import Glibc
  @usableFromInline func _log(_ x: Float) -> Float { logf(x) }
  @usableFromInline func _cos(_ x: Float) -> Float { cosf(x) }
#elseif canImport(Darwin)
  import Darwin
  @usableFromInline func _log(_ x: Float) -> Float { logf(x) }
  @usableFromInline func _cos(_ x: Float) -> Float { cosf(x) }
#endif
