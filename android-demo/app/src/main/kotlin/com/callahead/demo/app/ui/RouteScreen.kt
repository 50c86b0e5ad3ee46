package com.callahead.demo.app.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.PaddingValues
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.Spacer
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.size
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.itemsIndexed
import androidx.compose.material.icons.Icons
import androidx.compose.material.icons.filled.Call
import androidx.compose.material.icons.filled.Settings
import androidx.compose.material.icons.filled.Warning
import androidx.compose.material3.Button
import androidx.compose.material3.ButtonDefaults
import androidx.compose.material3.ExperimentalMaterial3Api
import androidx.compose.material3.Icon
import androidx.compose.material3.IconButton
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Scaffold
import androidx.compose.material3.SnackbarDuration
import androidx.compose.material3.SnackbarHost
import androidx.compose.material3.SnackbarHostState
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.material3.TopAppBar
import androidx.compose.material3.pulltorefresh.PullToRefreshBox
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import com.callahead.demo.RouteScreenState
import uniffi.callahead.ConnectionState

/**
 * The route-planning screen: a stateless rendering of [RouteScreenState].
 * Every action goes straight to the view model through the callbacks.
 */
@OptIn(ExperimentalMaterial3Api::class)
@Composable
fun RouteScreen(
    state: RouteScreenState,
    refreshing: Boolean,
    onRefresh: () -> Unit,
    onCallNextHour: () -> Unit,
    onCall: (stopId: Long) -> Unit,
    onCancel: (stopId: Long) -> Unit,
    onMove: (from: Int, to: Int) -> Unit,
    onOpenSettings: () -> Unit,
) {
    var timelineStopId by rememberSaveable { mutableStateOf<Long?>(null) }
    val snackbar = remember { SnackbarHostState() }
    LaunchedEffect(state.error) {
        state.error?.let { snackbar.showSnackbar(it, withDismissAction = true, duration = SnackbarDuration.Long) }
    }

    Scaffold(
        topBar = {
            RouteTopBar(state = state, onCallNextHour = onCallNextHour, onOpenSettings = onOpenSettings)
        },
        snackbarHost = { SnackbarHost(snackbar) },
    ) { padding ->
        PullToRefreshBox(
            isRefreshing = refreshing,
            onRefresh = onRefresh,
            modifier = Modifier.padding(padding).fillMaxSize(),
        ) {
            LazyColumn(
                contentPadding = PaddingValues(12.dp),
                verticalArrangement = Arrangement.spacedBy(8.dp),
                modifier = Modifier.fillMaxSize(),
            ) {
                if (state.stops.isEmpty()) {
                    item(key = "empty") {
                        Text(
                            text = "No stops yet. Pull down to sync today's route.",
                            style = MaterialTheme.typography.bodyLarge,
                            modifier = Modifier.padding(24.dp),
                        )
                    }
                }
                itemsIndexed(state.stops, key = { _, row -> row.stopId }) { index, row ->
                    StopCard(
                        row = row,
                        number = index + 1,
                        canMoveUp = index > 0,
                        canMoveDown = index < state.stops.lastIndex,
                        onMoveUp = { onMove(index, index - 1) },
                        onMoveDown = { onMove(index, index + 1) },
                        onCall = { onCall(row.stopId) },
                        onCancel = { onCancel(row.stopId) },
                        onOpenTimeline = { timelineStopId = row.stopId },
                        modifier = Modifier.animateItem(),
                    )
                }
            }
        }
    }

    // Looked up in the live state, so the open sheet follows the call as it progresses.
    state.stops.firstOrNull { it.stopId == timelineStopId }?.let { row ->
        TimelineSheet(row = row, onDismiss = { timelineStopId = null })
    }
}

@OptIn(ExperimentalMaterial3Api::class)
@Composable
private fun RouteTopBar(state: RouteScreenState, onCallNextHour: () -> Unit, onOpenSettings: () -> Unit) {
    Column {
        TopAppBar(
            title = {
                Column {
                    Text("Route")
                    Text(
                        text = listOf(state.date, connectionLabel(state.connection))
                            .filter { it.isNotEmpty() }
                            .joinToString("  ·  "),
                        style = MaterialTheme.typography.labelMedium,
                        color = MaterialTheme.colorScheme.onSurfaceVariant,
                    )
                }
            },
            actions = {
                Text(
                    text = "Calls ${state.activeCalls}/${state.maxActive}",
                    style = MaterialTheme.typography.labelLarge,
                    modifier = Modifier.padding(horizontal = 8.dp),
                )
                IconButton(onClick = onOpenSettings) {
                    Icon(Icons.Filled.Settings, contentDescription = "Server and token")
                }
            },
        )
        if (state.offlineBanner) OfflineBanner()
        Surface(tonalElevation = 2.dp, modifier = Modifier.fillMaxWidth()) {
            Row(
                verticalAlignment = Alignment.CenterVertically,
                modifier = Modifier.padding(horizontal = 16.dp, vertical = 8.dp),
            ) {
                Text(
                    text = if (state.queued > 0) "${state.queued} queued" else "",
                    style = MaterialTheme.typography.bodyMedium,
                    modifier = Modifier.weight(1f),
                )
                Button(onClick = onCallNextHour) {
                    Icon(Icons.Filled.Call, contentDescription = null, modifier = Modifier.size(ButtonDefaults.IconSize))
                    Spacer(Modifier.size(ButtonDefaults.IconSpacing))
                    Text("Call the next hour")
                }
            }
        }
    }
}

@Composable
private fun OfflineBanner() {
    Surface(
        color = MaterialTheme.colorScheme.tertiaryContainer,
        contentColor = MaterialTheme.colorScheme.onTertiaryContainer,
        modifier = Modifier.fillMaxWidth(),
    ) {
        Row(
            verticalAlignment = Alignment.CenterVertically,
            horizontalArrangement = Arrangement.spacedBy(8.dp),
            modifier = Modifier.padding(horizontal = 16.dp, vertical = 8.dp),
        ) {
            Icon(Icons.Filled.Warning, contentDescription = null)
            Text(
                text = "Offline. Your taps are saved and sent when the connection is back.",
                style = MaterialTheme.typography.bodyMedium,
            )
        }
    }
}

private fun connectionLabel(connection: ConnectionState): String = when (connection) {
    ConnectionState.ONLINE -> "Online"
    ConnectionState.CONNECTING -> "Connecting…"
    ConnectionState.OFFLINE -> "Offline"
}
