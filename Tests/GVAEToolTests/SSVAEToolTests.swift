// End to end on the built binary: `gvae image ssvae …` on a tiny labelled idx set the test writes.
import Foundation
import Testing

/// 120 training and 40 test images of 8×8 (four stripe classes), labels for both.
func tinyLabelledMNIST() throws -> URL {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gvae-ssvae-tool-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  for (stem, n) in [("train", 120), ("t10k", 40)] {
    try idxBytes(shape: [n, 8, 8], stripes(n)).write(to: dir.appendingPathComponent("\(stem)-images-idx3-ubyte"))
    try idxBytes(shape: [n], (0..<n).map { UInt8($0 % 4) }).write(to: dir.appendingPathComponent("\(stem)-labels-idx1-ubyte"))
  }
  return dir
}

@Suite(.serialized) struct SSVAEToolTests {
  @Test func trainResumeEvaluate() throws {
    let dir = try tinyLabelledMNIST()
    defer { try? FileManager.default.removeItem(at: dir) }
    let model = dir.appendingPathComponent("m2.safetensors").path
    let common = [
      "--data", dir.path, "--output", model, "--labels", "8", "--batch-size", "20", "--labelled-batch-size", "8",
      "--validation-count", "12", "--hidden", "32", "--latent", "4", "--lr", "3e-3", "--seed", "1",
    ]
    let train = try gvae(["image", "ssvae", "train", "--epochs", "2"] + common)
    #expect(train.status == 0, "\(train.stderr)")
    #expect(train.stderr.contains("M2, 4 classes") && train.stderr.contains("8 labelled / 100 unlabelled / 12 validation images 8×8"), "\(train.stderr)")
    let log = try String(contentsOfFile: model + ".log.jsonl", encoding: .utf8)
    #expect(log.components(separatedBy: "\"event\":\"epoch\"").count == 3)
    #expect(log.contains("\"validationError\""))
    #expect(FileManager.default.fileExists(atPath: model + ".checkpoint"))

    let more = try gvae(["image", "ssvae", "train", "--epochs", "12", "--resume"] + common)
    #expect(more.status == 0, "\(more.stderr)")
    #expect(more.stderr.contains("resumed at epoch 3, batch 0, step 10"), "\(more.stderr)")

    let eval = try gvae(["image", "ssvae", "evaluate", "--model", model, "--data", dir.path, "--format", "json"])
    #expect(eval.status == 0, "\(eval.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any]
    #expect(json?["images"] as? Int == 40)
    let error = try #require(json?["error"] as? Double)
    #expect(error >= 0 && error < 0.5, "test error \(error) on four easy classes from 8 labels")
    let text = try gvae(["image", "ssvae", "evaluate", "--model", model, "--data", dir.path])
    #expect(text.status == 0 && text.stdout.contains("images 40"))

    // Wrong model kinds, and data without labels, are clear errors.
    let asVAE = try gvae(["image", "vae", "evaluate", "--model", model, "--data", dir.path])
    #expect(asVAE.status != 0 && asVAE.stderr.contains("semi-supervised VAE (M2) model file"), "\(asVAE.stderr)")
    let vae = dir.appendingPathComponent("vae.safetensors").path
    let v = try gvae([
      "image", "vae", "train", "--data", dir.path, "--output", vae, "--epochs", "1", "--batch-size", "20",
      "--validation-count", "10", "--preset", "2d",
    ])
    #expect(v.status == 0, "\(v.stderr)")
    // M1+M2 on that VAE's two latent means; the file carries the M1.
    let stacked = dir.appendingPathComponent("m1m2.safetensors").path
    let s = try gvae([
      "image", "ssvae", "train", "--data", dir.path, "--output", stacked, "--m1", vae, "--labels", "8",
      "--batch-size", "20", "--validation-count", "12", "--hidden", "16", "--latent", "2", "--epochs", "2",
    ])
    #expect(s.status == 0 && s.stderr.contains("M1+M2 (M2 on 2 latent means of"), "\(s.stderr)")
    #expect(s.stderr.contains("its active dimensions"), "\(s.stderr)")
    let all = try gvae([
      "image", "ssvae", "train", "--data", dir.path, "--output", stacked + ".all", "--m1", vae, "--labels", "8",
      "--batch-size", "20", "--validation-count", "12", "--hidden", "16", "--latent", "2", "--epochs", "1",
      "--m1-all-dimensions",
    ])
    #expect(all.status == 0 && !all.stderr.contains("active dimensions"), "\(all.stderr)")
    let se = try gvae(["image", "ssvae", "evaluate", "--model", stacked, "--data", dir.path, "--format", "json"])
    #expect(se.status == 0 && se.stdout.contains("\"images\": 40") && se.stdout.contains("\"error\""), "\(se.stderr)")
    let m1Wrong = try gvae(["image", "ssvae", "train", "--data", dir.path, "--output", stacked + "2", "--m1", model])
    #expect(m1Wrong.status != 0 && m1Wrong.stderr.contains("semi-supervised VAE (M2) model file"), "\(m1Wrong.stderr)")
    let asM2 = try gvae(["image", "ssvae", "evaluate", "--model", vae, "--data", dir.path])
    #expect(asM2.status != 0 && asM2.stderr.contains("is an image VAE model file, not a semi-supervised VAE"), "\(asM2.stderr)")
    let noLabels = try tinyMNIST()
    defer { try? FileManager.default.removeItem(at: noLabels) }
    let unlabelled = try gvae(["image", "ssvae", "evaluate", "--model", model, "--data", noLabels.path])
    #expect(unlabelled.status != 0 && unlabelled.stderr.contains("the test set has no labels"), "\(unlabelled.stderr)")
    let odd = try gvae([
      "image", "ssvae", "train", "--data", dir.path, "--output", dir.appendingPathComponent("odd.safetensors").path,
      "--labels", "6", "--epochs", "1",
    ])
    #expect(odd.status != 0 && odd.stderr.contains("multiple of the 4 classes"), "\(odd.stderr)")
  }
}
