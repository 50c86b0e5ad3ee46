// swift-tools-version:5.10
import PackageDescription

// The courier client for iOS: the Rust core as a static library
// (CallaheadFFI.xcframework), its generated Swift bindings (module
// `callahead`) and the route view model (CallaheadKit). The xcframework and
// Sources/callahead/callahead.swift are built by ../scripts/build-xcframework.sh
// and never committed.
let package = Package(
    name: "CallaheadKit",
    platforms: [.iOS(.v16)],
    products: [
        .library(name: "CallaheadKit", targets: ["CallaheadKit"]),
    ],
    targets: [
        // libcallahead_ffi.a for devices and simulators, with the C header
        // and module map of the clang module `callaheadFFI`.
        .binaryTarget(name: "CallaheadFFI", path: "CallaheadFFI.xcframework"),
        .target(
            name: "callahead",
            dependencies: ["CallaheadFFI"],
            path: "Sources/callahead",
            // The core reads the device's time zone through CoreFoundation.
            linkerSettings: [.linkedFramework("CoreFoundation")]
        ),
        .target(name: "CallaheadKit", dependencies: ["callahead"], path: "Sources/CallaheadKit"),
    ]
)
