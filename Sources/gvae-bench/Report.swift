import Foundation

/// Median wall time of `runs` calls of `body`, after `warmup` untimed calls.
func medianSeconds(runs: Int, warmup: Int = 1, _ body: () throws -> Void) rethrows -> Double {
  for _ in 0..<warmup { try body() }
  var times: [Double] = []
  for _ in 0..<max(1, runs) {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
  }
  times.sort()
  return times[times.count / 2]
}

/// Prints one measurement as a JSON line: name, median_seconds and any extra fields.
func report(_ name: String, medianSeconds: Double, _ extra: [String: Any] = [:]) {
  var object: [String: Any] = ["name": name, "median_seconds": medianSeconds]
  for (k, v) in extra { object[k] = v }
  if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
    let line = String(data: data, encoding: .utf8)
  {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
  }
}
