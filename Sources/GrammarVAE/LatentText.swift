// Latent vectors written as text (the input of `gvae decode`).

/// What is wrong with one line holding a latent vector.
public struct LatentLineError: Error, Equatable, Sendable, CustomStringConvertible {
  public let message: String
  public init(message: String) { self.message = message }
  public var description: String { message }
}

/// `size` finite numbers separated by spaces, tabs or commas, optionally in `[…]`.
public func parseLatentVector(_ line: String, size: Int) throws(LatentLineError) -> [Float] {
  var s = Substring(line)
  while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
  while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
  if s.hasPrefix("[") && s.hasSuffix("]") && s.count >= 2 { s = s.dropFirst().dropLast() }
  var out: [Float] = []
  // Stop at size + 1 numbers, so a huge line never builds a huge array.
  for f in s.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }) {
    guard let v = Float(f), v.isFinite else {
      throw LatentLineError(
        message: "\(String(f.prefix(40)).debugDescription) is not a finite number")
    }
    out.append(v)
    if out.count > size { break }
  }
  guard out.count == size else {
    let got = out.count > size ? "more" : String(out.count)
    throw LatentLineError(message: "expected \(size) numbers (the model's latent size), got \(got)")
  }
  return out
}
