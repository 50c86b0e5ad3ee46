import CallaheadKit
import CryptoKit
import SwiftUI

@main
struct CallaheadDemoApp: App {
    @StateObject private var session = DemoSession()

    var body: some Scene {
        WindowGroup {
            RootView(session: session)
        }
    }
}

/// Settings until a client is open, the route after; the settings again on request.
struct RootView: View {
    @ObservedObject var session: DemoSession
    @State private var editingSettings = false

    var body: some View {
        NavigationStack {
            if let route = session.route {
                RouteView(
                    model: route,
                    onRefresh: { await session.refresh() },
                    onOpenSettings: { editingSettings = true }
                )
            } else {
                SettingsView(
                    serverUrl: session.serverUrl,
                    token: session.token,
                    onSave: { url, token in session.save(serverUrl: url, token: token) },
                    onCancel: nil
                )
            }
        }
        .sheet(isPresented: $editingSettings) {
            NavigationStack {
                SettingsView(
                    serverUrl: session.serverUrl,
                    token: session.token,
                    onSave: { url, token in
                        session.save(serverUrl: url, token: token)
                        editingSettings = false
                    },
                    onCancel: { editingSettings = false }
                )
            }
        }
    }
}

/// Keeps the signed-in account's RouteViewModel; a new account gets a new one.
/// The server URL and token live in UserDefaults, the client's SQLite file in
/// Application Support, one file per server and token.
@MainActor
final class DemoSession: ObservableObject {
    @Published private(set) var route: RouteViewModel?

    private let defaults = UserDefaults.standard

    /// The simulator shares the Mac's network: a local server is 127.0.0.1.
    var serverUrl: String { defaults.string(forKey: "serverUrl") ?? "http://127.0.0.1:8080" }
    var token: String { defaults.string(forKey: "courierToken") ?? "" }

    init() {
        open()
    }

    func save(serverUrl: String, token: String) {
        defaults.set(serverUrl.trimmingCharacters(in: .whitespacesAndNewlines), forKey: "serverUrl")
        defaults.set(token.trimmingCharacters(in: .whitespacesAndNewlines), forKey: "courierToken")
        open()
    }

    /// Downloads today's route; the list keeps showing the local copy meanwhile.
    func refresh() async {
        await route?.sync(date: Self.today())
    }

    private func open() {
        route?.close()
        route = nil
        guard !token.isEmpty, let dbPath = Self.databasePath(serverUrl: serverUrl, token: token) else { return }
        route = RouteViewModel(settings: ClientSettings(dbPath: dbPath, serverUrl: serverUrl, token: token))
        Task { await refresh() }
    }

    private static func databasePath(serverUrl: String, token: String) -> String? {
        let support = try? FileManager.default.url(
            for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true
        )
        // One database per account, so one courier's cached route and queued
        // taps are never sent with another courier's token.
        let account = SHA256.hash(data: Data("\(serverUrl)\n\(token)".utf8))
            .prefix(8).map { String(format: "%02x", $0) }.joined()
        return support?.appendingPathComponent("callahead-\(account).db").path
    }

    private static func today() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: Date())
    }
}
