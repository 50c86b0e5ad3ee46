import org.jetbrains.kotlin.gradle.dsl.JvmTarget

// The plain-Kotlin route view model (src/main/kotlin, also built and tested
// on the JVM by ../pom.xml) plus the generated uniffi bindings, as an Android
// library. The bindings are generated, never committed: run
// ../scripts/build-android-libs.sh first (see ../README.md).
plugins {
    alias(libs.plugins.android.library)
    alias(libs.plugins.kotlin.android)
}

val bindingsDir = rootProject.file("../bindings/kotlin")

android {
    namespace = "com.callahead.demo.viewmodel"
    compileSdk = 35

    defaultConfig {
        minSdk = 26
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets["main"].kotlin.srcDir(bindingsDir)
    // The view model's tests run on the JVM with Maven against a live
    // server (../pom.xml, from ./scripts/test), not as Android unit tests.
    sourceSets["test"].java.setSrcDirs(emptyList<String>())
    sourceSets["test"].kotlin.setSrcDirs(emptyList<String>())
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // The generated bindings call the Rust library through JNA; the aar
    // carries JNA's own native dispatch library for every Android ABI.
    api("net.java.dev.jna:jna:${libs.versions.jna.get()}@aar")
    api(libs.kotlinx.coroutines.core)
}

tasks.named("preBuild") {
    val generatedBindings = bindingsDir.resolve("uniffi/callahead/callahead.kt")
    doFirst {
        if (!generatedBindings.isFile) {
            throw GradleException(
                "Missing $generatedBindings: run android-demo/scripts/build-android-libs.sh first",
            )
        }
    }
}
