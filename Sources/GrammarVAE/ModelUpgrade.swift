// Reads model files of the first layout (format 1: the hand-fused network's [in, out]
// weights) into today's network, once, so trained models survive the change of layout.
import Engine
import NN

extension VAEModel {
  /// The model in a format-1 file, its tensors renamed and laid out as today's network.
  public static func upgrade(path: String) throws(ModelError) -> VAEModel {
    let st = try read(path: path)
    guard st.metadata["gvae.format"] == "1" else {
      throw .file("\(path) is not a format-1 model file (gvae.format is \(st.metadata["gvae.format"] ?? "missing"))")
    }
    let model = try untrained(st, name: path, format: "1", expectedGrammar: nil)
    let c = model.configuration
    func bad(_ m: String) -> ModelError { .file("\(path): not a valid format-1 model file (\(m))") }
    func old(_ name: String, _ shape: [Int]) throws(ModelError) -> Tensor {
      guard let e = st.entries[name] else { throw bad("tensor '\(name)' is missing") }
      guard e.tensor.shape == shape else {
        throw bad("tensor '\(name)' has shape \(e.tensor.shape), expected \(shape)")
      }
      return e.tensor
    }
    var new: [String: Tensor] = [:]
    func transposed(_ t: Tensor) -> Tensor { t.permuted([1, 0]) }
    /// Old batch-norm names (gamma, beta) → PyTorch's (weight, bias), running statistics kept.
    func norm(from: String, to: String, _ n: Int) throws(ModelError) {
      for (o, t) in [("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"), ("running_var", "running_var")] {
        new["\(to).\(t)"] = try old("\(from).\(o)", [n])
      }
    }
    var channels = c.vocabularySize
    var length = c.steps
    for (i, spec) in c.convolutions.enumerated() {
      let (F, K, C) = (spec.filters, spec.kernel, channels)
      // Old im2col weight [K·C, F] (row j·C + c) → Conv1d [F, C, K].
      let w = try old("encoder.conv\(i).weight", [K * C, F])
      var conv = Tensor(zeros: [F, C, K])
      for f in 0..<F {
        for ch in 0..<C { for j in 0..<K { conv.storage[(f * C + ch) * K + j] = w.storage[(j * C + ch) * F + f] } }
      }
      new["encoder.conv.\(i).weight"] = conv
      new["encoder.conv.\(i).bias"] = try old("encoder.conv\(i).bias", [F])
      if c.convolutionBatchNorm { try norm(from: "encoder.conv\(i).norm", to: "encoder.norm.\(i)", F) }
      channels = F
      length -= K - 1
    }
    // Old flatten order [length, filters] → PyTorch's [filters, length].
    let (F, L, Hd) = (channels, length, c.encoderHidden)
    let dense = try old("encoder.dense.weight", [L * F, Hd])
    var flat = Tensor(zeros: [Hd, F * L])
    for h in 0..<Hd {
      for f in 0..<F { for t in 0..<L { flat.storage[h * F * L + f * L + t] = dense.storage[(t * F + f) * Hd + h] } }
    }
    new["encoder.dense.weight"] = flat
    new["encoder.dense.bias"] = try old("encoder.dense.bias", [Hd])
    let Z = c.latentSize
    for (from, to) in [("encoder.mean", "encoder.mean"), ("encoder.log_var", "encoder.logvar")] {
      new[to + ".weight"] = transposed(try old(from + ".weight", [Hd, Z]))
      new[to + ".bias"] = try old(from + ".bias", [Z])
    }
    if c.latentBatchNorm { try norm(from: "decoder.latent_norm", to: "decoder.norm", Z) }
    new["decoder.latent.weight"] = transposed(try old("decoder.dense.weight", [Z, c.decoderHidden]))
    new["decoder.latent.bias"] = try old("decoder.dense.bias", [c.decoderHidden])
    let H = c.gruHidden
    for l in 0..<c.gruLayers {
      let input = l == 0 ? c.decoderHidden : H
      new["decoder.gru.weight_ih_l\(l)"] = transposed(try old("decoder.gru\(l).weight_ih", [input, 3 * H]))
      new["decoder.gru.weight_hh_l\(l)"] = transposed(try old("decoder.gru\(l).weight_hh", [H, 3 * H]))
      new["decoder.gru.bias_ih_l\(l)"] = try old("decoder.gru\(l).bias_ih", [3 * H])
      new["decoder.gru.bias_hh_l\(l)"] = try old("decoder.gru\(l).bias_hh", [3 * H])
    }
    new["decoder.output.weight"] = transposed(try old("decoder.output.weight", [H, c.vocabularySize]))
    new["decoder.output.bias"] = try old("decoder.output.bias", [c.vocabularySize])
    try model.assign(new.mapValues { SafeTensorsEntry(dtype: .F32, tensor: $0) }, name: path)
    return model
  }
}
