import XCTest
@testable import Diffusion

final class DiffusionSmokeTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
