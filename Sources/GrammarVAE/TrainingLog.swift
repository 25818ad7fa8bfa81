// Training records on disk: a JSON-lines log and an SVG loss curve beside the model.
import Foundation

public enum TrainingLog {
  /// Appends one JSON object per line.
  public static func append(_ line: String, to path: String) {
    let data = Data((line + "\n").utf8)
    if let h = FileHandle(forWritingAtPath: path) {
      h.seekToEndOfFile()
      h.write(data)
      try? h.close()
    } else {
      try? data.write(to: URL(fileURLWithPath: path))
    }
  }

  public static func json(_ r: EpochRecord) -> String {
    "{\"event\":\"epoch\"," + VAEModel.json(r).dropFirst()
  }

  /// An SVG plot of training and validation loss per epoch (and per-batch points if given).
  public static func svg(
    history: [EpochRecord], batchLosses: [(Double, Double)] = [], title: String
  ) -> String {
    let W = 640.0
    let H = 400.0
    let left = 60.0
    let right = 20.0
    let top = 30.0
    let bottom = 40.0
    var xs: [Double] = history.map { Double($0.epoch) }
    var ys: [Double] = history.flatMap { [$0.trainLoss] + ($0.validationLoss.map { [$0] } ?? []) }
    xs += batchLosses.map(\.0)
    ys += batchLosses.map(\.1)
    ys = ys.filter(\.isFinite)
    let x0 = 0.0
    let x1 = max(xs.max() ?? 1, 1)
    var y0 = ys.min() ?? 0
    var y1 = ys.max() ?? 1
    if y1 - y0 < 1e-9 {
      y0 -= 1
      y1 += 1
    }
    func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (W - left - right) }
    func py(_ y: Double) -> Double { top + (y1 - y) / (y1 - y0) * (H - top - bottom) }
    func path(_ pts: [(Double, Double)]) -> String {
      pts.enumerated().map {
        "\($0.offset == 0 ? "M" : "L")\(String(format: "%.1f,%.1f", px($0.element.0), py($0.element.1)))"
      }.joined(separator: " ")
    }
    var s =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(W))\" height=\"\(Int(H))\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s +=
      "<text x=\"\(left)\" y=\"18\">\(title.replacingOccurrences(of: "<", with: "&lt;"))</text>\n"
    s +=
      "<line x1=\"\(left)\" y1=\"\(H - bottom)\" x2=\"\(W - right)\" y2=\"\(H - bottom)\" stroke=\"black\"/>\n"
    s +=
      "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(H - bottom)\" stroke=\"black\"/>\n"
    for k in 0...4 {
      let y = y0 + (y1 - y0) * Double(k) / 4
      s +=
        "<text x=\"5\" y=\"\(String(format: "%.1f", py(y) + 4))\">\(String(format: "%.3g", y))</text>\n"
      let x = x0 + (x1 - x0) * Double(k) / 4
      s +=
        "<text x=\"\(String(format: "%.1f", px(x) - 8))\" y=\"\(H - bottom + 16)\">\(String(format: "%.3g", x))</text>\n"
    }
    s += "<text x=\"\(W / 2 - 20)\" y=\"\(H - 6)\">epoch</text>\n"
    if !batchLosses.isEmpty {
      s +=
        "<path d=\"\(path(batchLosses))\" fill=\"none\" stroke=\"#bbbbbb\" stroke-width=\"1\"/>\n"
    }
    let train = history.map { (Double($0.epoch), $0.trainLoss) }.filter { $0.1.isFinite }
    let val = history.compactMap { r in r.validationLoss.map { (Double(r.epoch), $0) } }.filter {
      $0.1.isFinite
    }
    if !train.isEmpty {
      s += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n"
    }
    if !val.isEmpty {
      s += "<path d=\"\(path(val))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
    }
    s += "<text x=\"\(W - 170)\" y=\"\(top + 10)\" fill=\"#1f77b4\">training loss</text>\n"
    s += "<text x=\"\(W - 170)\" y=\"\(top + 26)\" fill=\"#d62728\">validation loss</text>\n"
    s += "<text x=\"\(W - 170)\" y=\"\(top + 42)\" fill=\"#999999\">batch loss (running)</text>\n"
    s += "</svg>\n"
    return s
  }
}
