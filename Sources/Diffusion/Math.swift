#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@inline(__always) func dexp(_ x: Double) -> Double { exp(x) }
@inline(__always) func dlog(_ x: Double) -> Double { log(x) }
@inline(__always) func dpow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
