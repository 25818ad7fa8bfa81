// Expected improvement for minimisation, in log space so it stays usable far in the tail.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// `log h(z)`, `h(z) = z·Φ(z) + φ(z)`, so that for minimisation
///
/// ```
/// EI(x) = σ·h(z),  z = (best − μ(x)) / σ(x),  log EI = log σ + log h(z)
/// ```
///
/// Three regimes (as in Ament et al. 2023, "Unexpected improvements to expected
/// improvement"): z > −1 directly; −30 < z ≤ −1 as log φ(z) + log(1 − |z|·Φ(z)/φ(z)) with
/// Φ/φ from `erfc` times exp(z²/2) (relative error about z²·ε); z ≤ −30 from the asymptotic
/// series h/φ = z⁻² − 3z⁻⁴ + 15z⁻⁶ − …, where the plain formula underflows to 0 near z = −38.
/// Finite down to |z| ≈ 1e154, where −z²/2 itself overflows.
public func logH(_ z: Double) -> Double {
  if z > -1 {
    let cdf = 0.5 * erfc(-z / 2.0.squareRoot())
    return log(z * cdf + normalDensity(z))
  }
  if z > -30 {
    let t = -z
    let ratio = 0.5 * (2 * Double.pi).squareRoot() * erfc(t / 2.0.squareRoot()) * exp(0.5 * t * t)
    return logNormalDensity(z) + log1p(-t * ratio)
  }
  // h/φ = z⁻² Σ_k (−1)^k (2k+1)!! z^(−2k); at |z| ≥ 30 ten terms reach double precision.
  let u = 1 / (z * z)
  var term = 1.0
  var sum = 1.0
  for k in 1...12 {
    term *= -Double(2 * k + 1) * u
    sum += term
  }
  return logNormalDensity(z) + log(u) + log(sum)
}

/// `log Φ(z)`, the standard normal log CDF, accurate in both tails.
public func logNormalCDF(_ z: Double) -> Double {
  if z > 0 { return log1p(-0.5 * erfc(z / 2.0.squareRoot())) }
  if z > -30 { return log(0.5 * erfc(-z / 2.0.squareRoot())) }
  // Φ(z)/φ(z) = |z|⁻¹ Σ_k (−1)^k (2k−1)!! z^(−2k).
  let u = 1 / (z * z)
  var term = 1.0
  var sum = 1.0
  for k in 1...12 {
    term *= -Double(2 * k - 1) * u
    sum += term
  }
  return logNormalDensity(z) - log(-z) + log(sum)
}

/// `d log h / dz = Φ(z) / h(z)` (h′ = Φ), from ratios to φ(z) so that nothing cancels in
/// the tail (the difference of the two logs would lose every digit near z = −1e8).
public func dLogH(_ z: Double) -> Double {
  if z > -1 {
    let cdf = 0.5 * erfc(-z / 2.0.squareRoot())
    return cdf / (z * cdf + normalDensity(z))
  }
  if z > -30 {
    let t = -z
    let ratio = 0.5 * (2 * Double.pi).squareRoot() * erfc(t / 2.0.squareRoot()) * exp(0.5 * t * t)
    return ratio / (1 - t * ratio)
  }
  // Φ/φ = |z|⁻¹ S₁ and h/φ = z⁻² S₂, so Φ/h = |z|·S₁/S₂.
  let u = 1 / (z * z)
  var t1 = 1.0
  var t2 = 1.0
  var s1 = 1.0
  var s2 = 1.0
  for k in 1...12 {
    t1 *= -Double(2 * k - 1) * u
    t2 *= -Double(2 * k + 1) * u
    s1 += t1
    s2 += t2
  }
  return -z * s1 / s2
}

func normalDensity(_ z: Double) -> Double { exp(-0.5 * z * z) / (2 * Double.pi).squareRoot() }

func logNormalDensity(_ z: Double) -> Double { -0.5 * z * z - 0.5 * log(2 * Double.pi) }

/// log EI of minimising below `best` at the rows of `x` (latent variance, no noise).
public func logExpectedImprovement(_ p: some PredictiveModel, at x: Matrix, best: Double)
  -> [Double]
{
  let (mu, v) = p.predict(x)
  return zip(mu, v).map { m, s2 in
    let s = s2.squareRoot()
    return log(s) + logH((best - m) / s)
  }
}

/// log EI at one point and its gradient with respect to the point.
public func logExpectedImprovementWithGradient(
  _ p: some PredictiveModel, at x: [Double], best: Double
)
  -> (value: Double, gradient: [Double])
{
  let (m, s2, dm, dv) = p.predictWithGradient(x)
  let s = s2.squareRoot()
  let z = (best - m) / s
  let value = log(s) + logH(z)
  let g = dLogH(z)
  // d log σ = dv/(2σ²); dz = −dμ/σ − z·dv/(2σ²).
  let gradient = (0..<x.count).map { d in
    let ds = dv[d] / (2 * s2)
    return ds + g * (-dm[d] / s - z * ds)
  }
  return (value, gradient)
}
