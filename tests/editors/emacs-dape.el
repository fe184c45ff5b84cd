;; Batch driver for the Emacs 29+ recipes of docs/editors.md (eglot, keymap-set, dape); run by
;; tests/editors/run.sh on Emacs 29+ with $DAPE_DIR naming a dape checkout (needs $WS).
(add-to-list 'load-path (getenv "DAPE_DIR"))
(require 'eglot)
(require 'dape)
(require 'python)
(setq dape-start-hook nil dape-stopped-hook nil dape-update-ui-hook nil) ; no windows in batch
;; --- recipe from docs/editors.md ---
(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               '((python-mode python-ts-mode)
                 . ("hotswap" "lsp" :initializationOptions (:runOnSave t)))))

(defun hotswap-command (command &rest arguments)
  "Run COMMAND of hotswap's language server; return its result."
  (jsonrpc-request (eglot-current-server) :workspace/executeCommand
                   `(:command ,command :arguments ,(vconcat arguments))))

(defun hotswap-run () (interactive) (hotswap-command "hotswap.run" (buffer-file-name)))
(defun hotswap-cancel () (interactive) (hotswap-command "hotswap.cancel"))
(keymap-set python-base-mode-map "C-c h r" #'hotswap-run)    ; Emacs 29+
(keymap-set python-base-mode-map "C-c h c" #'hotswap-cancel)

(defun hotswap-debug ()
  "Debug this script on the warm worker; dape attaches once debugpy listens."
  (interactive)
  (let ((ready (hotswap-command "hotswap.debug" (buffer-file-name))))
    ;; A session still attached since an earlier run debugs this one.
    (unless (and (eq (plist-get ready :attached) t) dape-active-mode)
      (dape `(modes (python-mode python-ts-mode)
              host ,(plist-get ready :host) port ,(plist-get ready :port)
              :request "attach" :type "python" :justMyCode t
              :pathMappings ,(plist-get ready :path_mappings))))))
;; --- driver ---
(defun wait-for (pred secs)
  (let ((deadline (+ (float-time) secs)))
    (while (and (< (float-time) deadline) (not (funcall pred)))
      (accept-process-output nil 0.2))
    (funcall pred)))
(defun worker-pid ()
  (with-temp-buffer
    (call-process "hotswap" nil t nil "status" "--json" "--workspace" (getenv "WS"))
    (goto-char (point-min))
    (let ((s (json-parse-buffer :object-type 'plist)))
      (plist-get (aref (plist-get s :workers) 0) :pid))))
(defun stop-line ()
  (let* ((conn (dape--live-connection 'stopped t))
         (frame (and conn (dape--current-stack-frame conn))))
    (and frame (format "%s:%s" (file-name-nondirectory (plist-get (plist-get frame :source) :path))
                       (plist-get frame :line)))))
(setq eglot-sync-connect 30)
(find-file (expand-file-name "script.py" (getenv "WS")))
(apply #'eglot (eglot--guess-contact))
(wait-for (lambda () nil) 3)
(message "C-c h r is %S" (key-binding (kbd "C-c h r")))
(call-interactively (key-binding (kbd "C-c h r")))
(wait-for (lambda () (flymake-diagnostics)) 30)
(dolist (d (flymake-diagnostics))
  (message "DIAG line %d: %s" (line-number-at-pos (flymake-diagnostic-beg d)) (flymake-diagnostic-text d)))
(goto-char (point-min)) (forward-line 1)
(dape-breakpoint-toggle)
(hotswap-debug)
(message "first debug run stopped at %s" (wait-for #'stop-line 30))
(let ((pid (worker-pid)))
  (dape-continue (dape--live-connection 'stopped))
  (wait-for (lambda () nil) 4)
  (message "after the run: session still active: %s" dape-active-mode)
  (hotswap-debug)
  (message "second debug run (no new attach) stopped at %s" (wait-for #'stop-line 30))
  (dape-kill (dape--live-connection 'parent))
  (wait-for (lambda () (not dape-active-mode)) 10)
  (wait-for (lambda () nil) 2)
  (message "after dape-kill: session active %s; worker %s -> %s" dape-active-mode pid (worker-pid)))
(let ((t0 (float-time))) (ignore-errors (eglot-shutdown (eglot-current-server))) (message "shutdown took %.1fs" (- (float-time) t0)))
(kill-emacs 0)
