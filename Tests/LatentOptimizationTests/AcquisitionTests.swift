import Engine
import LatentOptimization
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// log h(z), Φ(z)/h(z) and log Φ(z) with h(z) = zΦ(z) + φ(z), from mpmath at 60 digits.
let tailReference: [(z: Double, logH: Double, ratio: Double, logCDF: Double)] = [
  (3, 1.0987396653277077727, 0.33284096845179523558, -0.0013508099647481937988),
  (0.5, -0.35982768374506381859, 0.99092271800410996015, -0.36894641528865639307),
  (0, -0.91893853320467274178, 1.2533141373155002512, -0.69314718055994530942),
  (-0.5, -1.6205162643873199193, 1.5598731483480796712, -1.1759117615936186089),
  (-1, -2.4851210257126413368, 1.9042712333296918229, -1.8410216450092635058),
  (-2.5, -6.2125416454435128635, 3.0984232967911619292, -5.0816482772786904984),
  (-5, -16.744301162660990143, 5.3618162412880885298, -15.064998393988725736),
  (-10, -55.553122036122355927, 10.194383033412553306, -53.231285150512470578),
  (-20, -206.91783850942509785, 20.099262811101281775, -203.91715537109726394),
  (-29.9, -454.72299811949631649, 29.966666911139966082, -451.32291245852867701),
  (-30.1, -460.73628739874299547, 30.166226849616994636, -457.32956441638221506),
  (-40, -808.29856835661996024, 40.049906657648518193, -804.60844201375378817),
  (-100, -5010.1295788002497923, 100.01999400419586505, -5005.5242086942050886),
  (-1e4, -50000019.339619307157, 10000.000199999994, -50000010.129278915181),
  (-1e8, -5000000000000037.7603, 100000000.00000002, -5000000000000019.3396),
]

@Suite struct AcquisitionTests {
  @Test(arguments: tailReference.indices)
  func logHMatchesHighPrecisionReference(_ i: Int) {
    let r = tailReference[i]
    // Relative to max(1, |value|): absolute near 0, relative in the far tail.
    #expect(abs(logH(r.z) - r.logH) / max(1, abs(r.logH)) < 1e-11, "z \(r.z): \(logH(r.z))")
    #expect(abs(dLogH(r.z) - r.ratio) / r.ratio < 1e-9, "z \(r.z): \(dLogH(r.z))")
    #expect(abs(logNormalCDF(r.z) - r.logCDF) / max(1, abs(r.logCDF)) < 1e-11)
  }

  /// Where the plain formula is accurate, EI = σ(zΦ(z) + φ(z)) with z = (best − μ)/σ.
  @Test func expectedImprovementMatchesTheAnalyticFormula() throws {
    var rng = SeededRandom(seed: 13)
    let x = randomMatrix(12, 2, rng: &rng)
    let y = (0..<12).map { x[$0, 0] * x[$0, 0] + x[$0, 1] }
    let h = GPHyperparameters(
      kernel: ARDKernel(logLengthscales: [0, 0], logSignalVariance: 0), mean: 0,
      logNoiseVariance: log(0.01))
    let p = try ExactGP(inputs: x, targets: y, hyperparameters: h).posterior()
    let test = randomMatrix(50, 2, rng: &rng, scale: 1.5)
    let best = y.min()!
    let logEI = logExpectedImprovement(p, at: test, best: best)
    let (mu, v) = p.predict(test)
    for i in 0..<50 {
      let s = v[i].squareRoot()
      let z = (best - mu[i]) / s
      let cdf = 0.5 * erfc(-z / 2.0.squareRoot())
      let pdf = exp(-0.5 * z * z) / (2 * Double.pi).squareRoot()
      let ei = s * (z * cdf + pdf)
      guard ei > 1e-250 else { continue }
      #expect(abs(exp(logEI[i]) - ei) / ei < 1e-9, "point \(i): z \(z)")
    }
  }

  @Test func logEIStaysFiniteMonotoneAndInformativeFarInTheTail() {
    var previous = Double.infinity
    for z in stride(from: 5.0, through: -1e6, by: -997.3) + [-1e8, -1e12, -1e100] {
      let v = logH(z)
      #expect(v.isFinite && v < previous, "z \(z)")
      #expect(dLogH(z) > 0)
      previous = v
    }
    // Naive exp would be exactly 0 here; the log keeps the ordering.
    #expect(logH(-40) > logH(-41))
  }

  @Test func logEIGradientMatchesFiniteDifferences() throws {
    var rng = SeededRandom(seed: 14)
    let x = randomMatrix(10, 2, rng: &rng)
    let y = (0..<10).map { sin(x[$0, 0]) + x[$0, 1] }
    let h = GPHyperparameters(
      kernel: ARDKernel(logLengthscales: [log(0.5), log(0.7)], logSignalVariance: 0), mean: 0,
      logNoiseVariance: log(0.01))
    let p = try ExactGP(inputs: x, targets: y, hyperparameters: h).posterior()
    // A moderate point and one where EI is about e^-60 (z far below −1).
    for best in [y.min()!, y.min()! - 12] {
      for at in [[0.2, -0.3], [1.5, 1.0]] {
        let (_, g) = logExpectedImprovementWithGradient(p, at: at, best: best)
        let f: ([Double]) -> Double = {
          logExpectedImprovement(p, at: Matrix(rows: 1, columns: 2, storage: $0), best: best)[0]
        }
        let (e, i) = worstGradientError(f, at: at, analytic: g, step: 1e-6)
        #expect(e < 1e-5, "best \(best) at \(at): coordinate \(i)")
      }
    }
  }
}
