// Image-VAE model files: safetensors weights with the configuration JSON in the metadata.
import Engine
import Foundation
import NN

extension ImageVAE {
  /// Metadata key values that mark an image-VAE file.
  public static let kindKey = "gvae.kind"
  public static let kind = "image-vae"
  public static let configurationKey = "gvae.image_configuration"
  public static let formatKey = "gvae.format"
  public static let format = "image-1"
  public static let trainingKey = "gvae.training"

  static func json<T: Encodable>(_ value: T) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return String(decoding: (try? e.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
  }

  /// The model's weights and configuration as a safetensors container.
  public func container(trainingSummary: String = "{}") -> SafeTensorsFile {
    var tensors: [String: Tensor] = [:]
    for p in parameters { tensors[p.name] = p.value }
    return SafeTensorsFile(
      tensors: tensors,
      metadata: [
        Self.kindKey: Self.kind, Self.formatKey: Self.format,
        Self.configurationKey: Self.json(configuration), Self.trainingKey: trainingSummary,
      ])
  }

  /// Saves atomically (temporary file + rename).
  public func save(to path: String, trainingSummary: String = "{}") throws(ImageModelError) {
    do { try container(trainingSummary: trainingSummary).write(to: URL(fileURLWithPath: path)) } catch {
      throw .file("cannot write \(path): \(error)")
    }
  }

  /// Reads a model file; a Grammar VAE file or any other safetensors file is a clear error.
  public static func load(path: String) throws(ImageModelError) -> (model: ImageVAE, file: SafeTensorsFile) {
    let file: SafeTensorsFile
    do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch SafeTensorsError.io(_) {
      throw .file("cannot read model file \(path)")
    } catch {
      throw .file("\(path): not a valid model file (\(error))")
    }
    return (try load(file, name: path), file)
  }

  public static func load(_ file: SafeTensorsFile, name: String) throws(ImageModelError) -> ImageVAE {
    guard file.metadata[kindKey] == kind else {
      if file.metadata["gvae.grammar"] != nil || file.metadata["gvae.configuration"] != nil {
        let g = file.metadata["gvae.grammar_name"].map { " (grammar \($0))" } ?? ""
        throw .wrongKind(
          "\(name) is a Grammar VAE model file\(g), not an image VAE; use it with `gvae encode`/`gvae evaluate`, or train an image VAE with `gvae image vae train`")
      }
      if file.metadata[kindKey] == SSVAE.kind {
        throw .wrongKind(
          "\(name) is a semi-supervised VAE (M2) model file, not an image VAE; use it with `gvae image ssvae evaluate`")
      }
      throw .wrongKind("\(name) is not an image VAE model file (no \(kindKey)=\(kind) metadata)")
    }
    guard file.metadata[formatKey] == format else {
      throw .file("\(name): image VAE format \(file.metadata[formatKey] ?? "(none)"), this gvae reads \(format)")
    }
    guard let js = file.metadata[configurationKey],
      let c = try? JSONDecoder().decode(ImageVAEConfiguration.self, from: Data(js.utf8))
    else { throw .file("\(name): the image VAE configuration in the metadata is missing or malformed") }
    let model = try ImageVAE(configuration: c, seed: 0)
    do { try file.load(into: model.parameters) } catch {
      throw .file("\(name): \(error)")
    }
    return model
  }
}
