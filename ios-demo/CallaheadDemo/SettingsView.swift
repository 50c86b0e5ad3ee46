import SwiftUI

/// Where the server is and who the courier is. `onCancel` is nil on first
/// launch, when there is nothing to go back to.
struct SettingsView: View {
    let onSave: (String, String) -> Void
    let onCancel: (() -> Void)?

    @State private var serverUrl: String
    @State private var token: String

    init(serverUrl: String, token: String, onSave: @escaping (String, String) -> Void, onCancel: (() -> Void)?) {
        self.onSave = onSave
        self.onCancel = onCancel
        _serverUrl = State(initialValue: serverUrl)
        _token = State(initialValue: token)
    }

    var body: some View {
        Form {
            Section {
                TextField("http://127.0.0.1:8080", text: $serverUrl)
                    .keyboardType(.URL)
                    .textContentType(.URL)
                    .textInputAutocapitalization(.never)
                    .autocorrectionDisabled()
            } header: {
                Text("Server URL")
            } footer: {
                Text("The simulator reaches a server on your Mac at http://127.0.0.1:8080.")
            }
            Section {
                SecureField("cah_cou_…", text: $token)
                    .textInputAutocapitalization(.never)
                    .autocorrectionDisabled()
            } header: {
                Text("Courier token")
            } footer: {
                Text("Your dispatcher gives it to you; it starts with cah_cou_.")
            }
            Section {
                Button("Save and connect") { onSave(serverUrl, token) }
                    .disabled(serverUrl.trimmingCharacters(in: .whitespaces).isEmpty
                        || token.trimmingCharacters(in: .whitespaces).isEmpty)
            }
        }
        .navigationTitle("Server and courier")
        .toolbar {
            if let onCancel {
                ToolbarItem(placement: .cancellationAction) {
                    Button("Cancel", action: onCancel)
                }
            }
        }
    }
}
