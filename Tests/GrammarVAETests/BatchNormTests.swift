import Engine
import Testing

@testable import GrammarVAE

@Suite struct BatchNormTests {
  @Test func backwardMatchesCentralDifferences() {
    let rows = 6
    let C = 3
    let bn = BatchNormState(name: "bn", features: C)
    bn.gamma.value.storage = [1.5, 0.7, -0.4]
    bn.beta.value.storage = [0.1, -0.2, 0.3]
    var x: [Float] = (0..<(rows * C)).map { Float(($0 * 7919) % 13) / 5 - 1 }
    let w: [Float] = (0..<(rows * C)).map { Float(($0 * 104729) % 11) / 4 - 1 }
    func loss(_ input: [Float]) -> Double {
      var y = input
      var xh = [Float](repeating: 0, count: rows * C)
      var inv = [Float](repeating: 0, count: C)
      y.withPtr { yp in
        xh.withPtr { h in
          inv.withPtr { ip in
            bn.forwardTraining(yp, rows: rows, xhat: h, invStd: ip, updateRunning: false)
          }
        }
      }
      return zip(y, w).reduce(0) { $0 + Double($1.0 * $1.1) }
    }
    var y = x
    var xh = [Float](repeating: 0, count: rows * C)
    var inv = [Float](repeating: 0, count: C)
    y.withPtr { yp in
      xh.withPtr { h in
        inv.withPtr { ip in
          bn.forwardTraining(yp, rows: rows, xhat: h, invStd: ip, updateRunning: false)
        }
      }
    }
    var dy = w
    dy.withPtr { d in
      xh.withCPtr { h in inv.withCPtr { ip in bn.backward(d, rows: rows, xhat: h, invStd: ip) } }
    }
    for k in 0..<(rows * C) {
      let o = x[k]
      x[k] = o + 1e-2
      let up = loss(x)
      x[k] = o - 1e-2
      let down = loss(x)
      x[k] = o
      let numeric = (up - down) / 2e-2
      #expect(abs(numeric - Double(dy[k])) < 1e-2 * max(1, abs(numeric)), "x[\(k)]")
    }
  }
}
