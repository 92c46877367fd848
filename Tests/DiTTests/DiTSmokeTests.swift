import XCTest
@testable import DiT

final class DiTSmokeTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
