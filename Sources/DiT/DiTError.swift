/// Every error the engine reports names the file, key or field and what was expected.
public enum DiTError: Error, CustomStringConvertible, Equatable {
    case io(path: String, reason: String)
    case unknownConfig(name: String, hint: String?)
    case badConfig(source: String, field: String, expected: String, got: String)
    case badSafetensors(path: String, reason: String)
    case missingTensor(path: String, key: String, expectedShape: [Int])
    case unexpectedTensor(path: String, key: String, shape: [Int])
    case shapeMismatch(path: String, key: String, expected: [Int], got: [Int])
    case unsupportedDType(path: String, key: String, dtype: String, expected: String)
    case badInput(path: String, field: String, reason: String)
    /// A weight tensor holds NaN or ±Inf: `count` such values, the first at flat index `index`.
    case nonFiniteWeight(path: String, key: String, index: Int, value: String, count: Int)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .unknownConfig(name, hint):
            return "unknown model config '\(name)'" + (hint.map { ": \($0)" } ?? "")
                + " (built-in names look like DiT-MoE-S/2-8E2A or DiT-B/2; or pass a .json config file)"
        case let .badConfig(source, field, expected, got):
            return "\(source): '\(field)': expected \(expected), got \(got)"
        case let .badSafetensors(path, reason): return "\(path): not a valid safetensors file: \(reason)"
        case let .missingTensor(path, key, shape):
            return "\(path): missing tensor '\(key)' (expected shape \(shape))"
        case let .unexpectedTensor(path, key, shape):
            return "\(path): unexpected tensor '\(key)' with shape \(shape) (not part of this model config)"
        case let .shapeMismatch(path, key, expected, got):
            return "\(path): tensor '\(key)' has shape \(got), expected \(expected)"
        case let .unsupportedDType(path, key, dtype, expected):
            return "\(path): tensor '\(key)' has dtype \(dtype), expected \(expected)"
        case let .badInput(path, field, reason): return "\(path): '\(field)': \(reason)"
        case let .nonFiniteWeight(path, key, index, value, count):
            return "\(path): tensor '\(key)' has \(count) non-finite value(s), the first \(value) at flat index \(index); "
                + "expected finite weights (a diverged or corrupted checkpoint)"
        }
    }
}
