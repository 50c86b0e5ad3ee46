package com.callahead.demo.app

import androidx.lifecycle.ViewModel
import androidx.lifecycle.viewModelScope
import com.callahead.demo.RouteViewModel
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.job
import kotlinx.coroutines.launch
import uniffi.callahead.ClientSettings
import java.time.LocalDate

/**
 * Keeps the signed-in account's [RouteViewModel] alive across configuration
 * changes. Each account gets a child scope of [viewModelScope], so switching
 * accounts (or leaving the app for good) closes its client and cancels its work.
 */
class RouteHostViewModel(private val store: SettingsStore) : ViewModel() {
    private var routeScope: CoroutineScope? = null

    private val _route = MutableStateFlow<RouteViewModel?>(null)

    /** `null` until the courier has saved a server URL and token. */
    val route: StateFlow<RouteViewModel?> = _route.asStateFlow()

    private val _refreshing = MutableStateFlow(false)
    val refreshing: StateFlow<Boolean> = _refreshing.asStateFlow()

    val serverUrl: String get() = store.serverUrl
    val token: String get() = store.token

    init {
        store.clientSettings()?.let(::open)
    }

    fun saveSettings(serverUrl: String, token: String) {
        store.save(serverUrl, token)
        store.clientSettings()?.let(::open)
    }

    /** Downloads today's route; the list keeps showing the local copy meanwhile. */
    fun refresh() {
        val route = _route.value ?: return
        val scope = routeScope ?: return
        scope.launch {
            _refreshing.value = true
            try {
                route.sync(LocalDate.now().toString())
            } finally {
                _refreshing.value = false
            }
        }
    }

    private fun open(settings: ClientSettings) {
        closeRoute()
        val parent = viewModelScope.coroutineContext
        val scope = CoroutineScope(parent + SupervisorJob(parent.job))
        routeScope = scope
        _route.value = RouteViewModel(settings, scope)
        refresh()
    }

    private fun closeRoute() {
        _route.value?.close()
        routeScope?.cancel()
        _route.value = null
        routeScope = null
        _refreshing.value = false
    }

    override fun onCleared() = closeRoute()
}
