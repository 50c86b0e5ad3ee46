import CallaheadKit
import SwiftUI

/// The route-planning screen: a rendering of `RouteScreenState`. Every
/// action goes straight to the view model.
struct RouteView: View {
    @ObservedObject var model: RouteViewModel
    let onRefresh: () async -> Void
    let onOpenSettings: () -> Void

    /// The stop whose timeline is open.
    @State private var timelineFor: TimelineSelection?

    var body: some View {
        let state = model.state
        List {
            if state.offlineBanner {
                Label("Offline. Your taps are saved and sent when the connection is back.", systemImage: "wifi.slash")
                    .font(.subheadline)
                    .listRowBackground(Color.orange.opacity(0.2))
            }
            Section {
                HStack {
                    Text(state.queued > 0 ? "\(state.queued) queued" : "")
                        .font(.subheadline)
                        .foregroundStyle(.secondary)
                    Spacer()
                    Button {
                        model.callNextHour()
                    } label: {
                        Label("Call the next hour", systemImage: "phone.fill")
                    }
                    .buttonStyle(.borderedProminent)
                }
            }
            Section {
                if state.stops.isEmpty {
                    Text("No stops yet. Pull down to sync today's route.")
                        .foregroundStyle(.secondary)
                }
                ForEach(Array(state.stops.enumerated()), id: \.element.id) { index, row in
                    StopRowView(
                        row: row,
                        number: index + 1,
                        onCall: { model.callStop(row.stopId) },
                        onCancel: { model.cancel(row.stopId) },
                        onOpenTimeline: { timelineFor = TimelineSelection(id: row.stopId) }
                    )
                }
                .onMove { source, destination in
                    // List gives the gap to drop into; the view model wants the final row.
                    guard let from = source.first else { return }
                    model.moveStop(from: from, to: destination > from ? destination - 1 : destination)
                }
            } header: {
                Text(subtitle(state))
            }
        }
        .refreshable { await onRefresh() }
        .navigationTitle("Route")
        .toolbar {
            ToolbarItem(placement: .navigationBarLeading) {
                Text("Calls \(state.activeCalls)/\(state.maxActive)")
                    .font(.subheadline.monospacedDigit())
            }
            ToolbarItemGroup(placement: .primaryAction) {
                EditButton()
                Button(action: onOpenSettings) {
                    Image(systemName: "gearshape")
                }
                .accessibilityLabel("Server and token")
            }
        }
        .sheet(item: $timelineFor) { selection in
            // Looked up in the live state, so the open sheet follows the call as it progresses.
            if let row = model.state.stops.first(where: { $0.stopId == selection.id }) {
                StopTimelineView(row: row)
                    .presentationDetents([.medium, .large])
            }
        }
        .alert(
            "Something went wrong",
            isPresented: Binding(get: { model.state.error != nil }, set: { if !$0 { model.dismissError() } }),
            actions: { Button("OK", role: .cancel) {} },
            message: { Text(model.state.error ?? "") }
        )
    }

    private func subtitle(_ state: RouteScreenState) -> String {
        [state.date, connectionLabel(state.connection)].filter { !$0.isEmpty }.joined(separator: "  ·  ")
    }

    private func connectionLabel(_ connection: ConnectionState) -> String {
        switch connection {
        case .online: return "Online"
        case .connecting: return "Connecting…"
        case .offline: return "Offline"
        }
    }
}

private struct TimelineSelection: Identifiable {
    let id: Int64
}
